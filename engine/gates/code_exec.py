"""The `code_exec` scorer: greedy completion, program = the gate's program template, pass@1 in the sandbox.

Generated code runs only when the gate run allows it (`allow_code_exec = true`, `--allow-code-exec`);
each program runs in engine.gates.sandbox (own process and temp dir, rlimits, no network, timeout).
"""

from __future__ import annotations

import os

from engine.errors import SpecError
from engine.gates import answers as prompting
from engine.gates.metrics import summarize
from engine.gates.scoring import ScoreOutput, ScoreSettings, scorer
from engine.gates.template import render


def refuse_unless_allowed(gate, allowed: bool) -> None:
    if not allowed:
        raise SpecError(f"gate {gate.name}: runs model-generated code; allow it explicitly with "
                        "--allow-code-exec (job spec: allow_code_exec = true)")


@scorer("code_exec", version="1", metrics=lambda gate: {"pass@1"}, runs_code=True)
def score_code(items, backend, settings: ScoreSettings) -> ScoreOutput:
    from engine.gates.sandbox import run_programs

    gate = items.gate
    refuse_unless_allowed(gate, settings.allow_code_exec)
    completions = prompting.completions(items, backend, settings)
    programs = [render(gate.code.program, {**gate.prepare(row), "prompt": gate.render(row), "completion": c})
                for row, c in zip(items.rows, completions)]
    results = run_programs(programs, workers=min(4, os.cpu_count() or 1), timeout_s=gate.code.timeout_s,
                           memory_mb=gate.code.memory_mb)
    per_item = {"pass@1": [float(r.passed) for r in results]}
    metrics, stderr = summarize(per_item)
    samples = [{"index": i, "passed": r.passed, "status": r.status} for i, r in zip(items.indices, results)]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return ScoreOutput(metrics, stderr, per_item, samples=samples, stats={"statuses": statuses})
