"""`slayer plan SPEC [--box NAME]`: will this job fit that box? Memory and disk, term by term, and a verdict."""

from __future__ import annotations

import sys

import click

from slayer_console.commands.common import FORMAT, print_json, settings
from slayer_console.planning import plan_spec, refusal


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
        raise SpecError(f"{spec_path}: {spec.kind.name} jobs are not planned (train.*, merge.sweep and export.gguf "
                        "are: they hold or write a model)")
    if fmt == "json" and not hasattr(result, "gating"):  # merge.sweep, export.gguf: what they write and hold
        print_json({"box": box, "verdict": result.verdict, "need_gib": round(result.need_gib, 3),
                    "capacity_gib": round(result.capacity_gib, 3), "disk_gib": round(result.disk_gib, 3),
                    "change": result.change, "reasons": result.reasons, "memory": result.memory_where,
                    "disk_terms_gib": {k: round(v / 2**30, 3) for k, v in result.disk.items()},
                    "memory_terms_gib": {k: round(v / 2**30, 3) for k, v in result.memory.items()}})
    elif fmt == "json":
        m = result.memory
        print_json({"box": box, "verdict": result.verdict, "need_gib": round(result.need_gib, 3),
                    "capacity_gib": round(result.capacity_gib, 3), "disk_gib": round(result.disk_gib, 3),
                    "gating": result.gating, "gating_default": result.gating_default, "change": result.change,
                    "gate_boxes": result.gate_boxes,
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
