"""`slayer plan SPEC [--box NAME]`: will this job fit that box? Memory and disk, term by term, and a verdict."""

from __future__ import annotations

import sys

import click

from slayer_console.commands.common import FORMAT, print_json, settings


def box_machine(home, box: str):
    """The box's memory and GPUs as its driver knows them (an unknown box is its own error)."""
    from remotes.drivers import driver_for

    return driver_for(home, None, box).machine()


def plan_spec(home, spec, box: str):
    """The JobPlan of a parsed spec on `box`; None for kinds the planner does not size (they hold no model)."""
    from engine.plan import plan_training
    from engine.train.config import TrainJobConfig

    if not isinstance(spec.config, TrainJobConfig):
        return None
    return plan_training(spec.config, box_machine(home, box))


def check_fits(home, spec_path: str, spec, box: str) -> None:
    """Before a launch: refuse (SpecError, one line) a job the plan says does not fit; a model whose shape cannot
    be read here is launched unplanned, with a note."""
    from engine.errors import SpecError
    from engine.plan import NO_FIT, UnknownShape

    try:
        result = plan_spec(home, spec, box)
    except UnknownShape as e:
        click.echo(f"not planned: {e}", err=True)
        return
    if result is not None and result.verdict == NO_FIT:
        raise SpecError(refusal(spec_path, box, result))


def refusal(spec_path: str, box: str, plan) -> str:
    """The one line `slayer run` prints when a job does not fit."""
    why = "; ".join(plan.reasons) or f"needs {plan.need_gib:.1f} GiB per process, {plan.capacity_gib:.1f} GiB there"
    fix = f"; cheapest change that fits: {plan.change}" if plan.change else ""
    return f"{spec_path}: DOES NOT FIT on box {box}: {why}{fix} (see `slayer plan {spec_path} --box {box}`; " \
           "--force runs it anyway)"


@click.command()
@click.argument("spec_path", metavar="JOB.toml", type=click.Path(dir_okay=False))
@click.option("--box", default="local", show_default=True, help="the box to plan for (as `boxes check` saw it)")
@FORMAT
def plan(spec_path: str, box: str, fmt: str) -> None:
    """Estimate a job's memory and disk on a box: FITS, TIGHT or DOES NOT FIT, and what would make it fit."""
    from engine.errors import SpecError
    from engine.jobs import load_spec
    from engine.plan import NO_FIT

    spec = load_spec(spec_path)
    result = plan_spec(settings().home, spec, box)
    if result is None:
        raise SpecError(f"{spec_path}: {spec.kind.name} jobs are not planned (train.* jobs are: they hold a model "
                        "while training)")
    if fmt == "json":
        m = result.memory
        print_json({"box": box, "verdict": result.verdict, "need_gib": round(result.need_gib, 3),
                    "capacity_gib": round(result.capacity_gib, 3), "disk_gib": round(result.disk_gib, 3),
                    "gating": result.gating, "gating_default": result.gating_default, "change": result.change,
                    "reasons": result.reasons,
                    "terms_gib": {k: round(v / 2**30, 3) for k, v in
                                  {"weights": m.weights, "adapter": m.adapter, "activations": m.activations,
                                   "trainer": m.trainer, "runtime": m.runtime}.items()},
                    "gate_extra_gib": {k: round(v / 2**30, 3) for k, v in m.gate_extra.items()}})
    else:
        for line in result.lines():
            click.echo(line)
    if result.verdict == NO_FIT:
        click.echo(f"error: {refusal(spec_path, box, result)}", err=True)
        sys.exit(2)
