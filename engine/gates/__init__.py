"""Gates: data-defined evaluations (assets/gates/*.toml), their scorers and backends, and the `gate` job.

`load_gate`, `load_suite`, `list_gates` read gates; `run_gates` scores subjects on them.
"""

from engine.gates.run import run_gates
from engine.gates.spec import Gate, list_gates, load_gate, load_suite

__all__ = ["Gate", "list_gates", "load_gate", "load_suite", "run_gates"]
