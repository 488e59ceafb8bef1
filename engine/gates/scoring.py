"""The scorer registry: a scorer turns a gate's items and a backend into per-item outcomes and metrics.

Scorers register with `@scorer(name, version, metrics)` in the modules of SCORER_MODULES (imported on
first use); other packages add their module to that list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from engine.errors import SpecError
from engine.registry import Registry

SCORER_MODULES = [
    "engine.gates.likelihood",
    "engine.gates.generate",
    "engine.gates.code_exec",
    "engine.gates.style",
    "engine.gates.judge",
    "engine.gates.grammar",
    "engine.gates.ifeval",
    "engine.gates.safety",
]


@dataclass
class ScoreSettings:
    batch_size: int = 8
    allow_code_exec: bool = False
    progress: Callable[[int, int], None] = lambda done, total: None  # items done, items total
    judge: Any = None  # engine.gates.judge_client.JudgeSettings when the run has a judge endpoint
    subject: dict | None = None  # the subject being scored
    is_base: bool = False  # it is the run's base, which pairwise scorers compare every other subject with
    shared: dict = field(default_factory=dict)  # one per run: what a scorer keeps across subjects (base answers)


@dataclass
class ScoreOutput:
    metrics: dict[str, float]
    stderr: dict[str, float]
    per_item: dict[str, list[float]]  # metric → per-item score, dataset order (mean metrics only)
    preds: list[int] | None = None  # predicted choice index per item (-1: no valid answer)
    golds: list[int] | None = None
    samples: list[dict] = field(default_factory=list)  # per-item audit records: numbers only, no text
    stats: dict = field(default_factory=dict)  # tokens computed etc.
    fingerprint: dict = field(default_factory=dict)  # what else decides the score (judge model, checker, …)


@dataclass(frozen=True)
class Scorer:
    name: str
    version: str  # bump when a change can move any score; it is part of the fingerprint
    run: Callable  # run(items: GateItems, backend, settings: ScoreSettings) -> ScoreOutput
    metrics: Callable  # metrics(gate) -> set of metric names this scorer reports for the gate
    runs_code: bool = False  # needs the gate run's explicit allow_code_exec
    pairwise: bool = False  # compares each subject with the run's base (kind = "base"), which is scored first
    needs_judge: bool = False  # calls the judge endpoint: the run must name one
    likelihood: bool = False  # scores prompt log-probabilities (an endpoint backend must be able to)
    columns: tuple[str, ...] = ()  # row columns the scorer reads besides the gate's template and target
    unavailable: Callable | None = None  # unavailable(gate) -> why it cannot run here, or None; see resolve_gates


_SCORERS: Registry[Scorer] = Registry("scorer", SCORER_MODULES)


def scorer(name: str, version: str, metrics: Callable, runs_code: bool = False, **traits):
    """Decorator: register `fn(items, backend, settings) -> ScoreOutput` as scorer `name` (traits: see Scorer)."""

    def register(fn):
        _SCORERS.add(name, Scorer(name, version, fn, metrics, runs_code, **traits), fn)
        return fn

    return register


def get_scorer(name: str, source: str = "gate") -> Scorer:
    return _SCORERS.get(name, source)


def check_gate_metrics(gate, source: str) -> None:
    """The gate's scorer exists and can report every metric the gate names."""
    known = get_scorer(gate.scorer, source).metrics(gate)
    unknown = [m for m in gate.metrics if m not in known]
    if unknown:
        raise SpecError(f"{source}: scorer {gate.scorer!r} does not report {unknown[0]!r} "
                        f"(it reports: {', '.join(sorted(known))})")
