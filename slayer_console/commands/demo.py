"""`slayer demo [--fast]`: the whole campaign on tiny models, on this machine, into the store."""

from __future__ import annotations

import click

from slayer_console.commands.common import settings


@click.command()
@click.option("--fast", is_flag=True, help="fewer steps and items, the same path (what CI runs)")
@click.option("--seed", default=0, show_default=True)
@click.pass_context
def demo(ctx: click.Context, fast: bool, seed: int) -> None:
    """The whole campaign on tiny models, on this machine, into the store."""
    from engine.extras import require

    require("slayer demo", "ml", "gguf")
    from slayer_console.commands.decide import deltas
    from slayer_console.demo import DEMO_TOLERANCE_PP, run_demo, story

    experiment = run_demo(settings(), fast=fast, seed=seed)
    click.secho(f"\ndelta table of {experiment!r} (tolerance {DEMO_TOLERANCE_PP:g} pp)", bold=True)
    ctx.invoke(deltas, experiment=experiment, base=None, fmt="table", lam=1.0, tolerance=DEMO_TOLERANCE_PP)
    click.echo(story(settings(), experiment))
    click.echo(f"\nopen the console on it: slayer --home {settings().home} tui --experiment {experiment}")
