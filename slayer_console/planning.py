"""The memory plan of a job on a box, for `slayer plan`, `slayer run` and the console's launch dialog: the box as
its last `slayer boxes check` recorded it (this machine for `local`), and the one-line refusal of a job that
does not fit."""

from __future__ import annotations

from typing import Callable


def box_machine(home, box: str):
    """The box's memory and GPUs as its driver knows them (an unknown box is its own error)."""
    from remotes.drivers import driver_for

    return driver_for(home, None, box).machine()


def plan_spec(home, spec, box: str):
    """The plan of a parsed spec on `box`: a JobPlan (training) or an OutputPlan (merge.sweep, export.gguf);
    None for kinds the planner does not size."""
    from engine.export.config import ExportConfig
    from engine.merge.config import MergeSweepConfig
    from engine.plan import plan_export, plan_sweep, plan_training
    from engine.train.config import TrainJobConfig

    planner = {TrainJobConfig: plan_training, ExportConfig: plan_export, MergeSweepConfig: plan_sweep}
    kind = next((k for k in planner if isinstance(spec.config, k)), None)
    plan = planner[kind](spec.config, box_machine(home, box)) if kind else None
    if kind is TrainJobConfig and plan.gating == "fanout":
        from engine.plan.verdict import plan_gate_boxes

        from remotes.boxes import BoxError

        try:
            machines = {name: box_machine(home, name) for name in gate_boxes(spec)}
        except BoxError as e:
            raise BoxError(f"[gates] boxes: {e}") from None
        plan = plan_gate_boxes(plan, spec.config, machines)
    return plan


def refusal(source: str, box: str, plan) -> str:
    """The one line a launch prints when a job does not fit."""
    why = "; ".join(plan.reasons) or f"needs {plan.need_gib:.1f} GiB, {plan.capacity_gib:.1f} GiB there"
    fix = f"; cheapest change that fits: {plan.change}" if plan.change else ""
    return f"{source}: DOES NOT FIT on box {box}: {why}{fix} (see `slayer plan {source} --box {box}`; " \
           "--force runs it anyway)"


def check_fits(home, source: str, spec, box: str, note: Callable[[str], None] = lambda line: None) -> None:
    """Before a launch: refuse (SpecError, one line) a job the plan says does not fit; a model whose shape cannot be
    read here is launched unplanned, with a note."""
    from engine.errors import SpecError
    from engine.plan import NO_FIT, UnknownShape

    try:
        result = plan_spec(home, spec, box)
    except UnknownShape as e:
        note(f"not planned: {e}")
        return
    if result is not None and result.verdict == NO_FIT:
        raise SpecError(refusal(source, box, result))


def gate_boxes(spec) -> list[str]:
    """The boxes a training spec may gate its checkpoints on (`[gates] mode = "fanout"`, or `auto` with boxes)."""
    from engine.train.config import TrainJobConfig

    g = spec.config.gates if isinstance(spec.config, TrainJobConfig) else None
    return list(g.boxes) if g and g.mode in ("fanout", "auto") else []


def check_gate_boxes(home, source: str, spec) -> None:
    """Before a launch: each gate box is known, was checked and answers with a working engine (SpecError, one
    line)."""
    import asyncio

    from remotes.gatefan import check_gate_boxes as check

    if gate_boxes(spec):
        asyncio.run(check(home, gate_boxes(spec), source))
