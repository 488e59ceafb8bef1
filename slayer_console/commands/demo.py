"""`slayer demo [--fast]`: the whole campaign on tiny models, on this machine, into the store."""

from __future__ import annotations

import click

from slayer_console.commands.common import settings


@click.command()
@click.option("--fast", is_flag=True, help="fewer steps and items, the same path (what CI runs)")
@click.option("--seed", default=0, show_default=True)
def demo(fast: bool, seed: int) -> None:
    """The whole campaign on tiny models, on this machine, into the store."""
    from slayer_console.demo import run_demo

    experiment = run_demo(settings(), fast=fast, seed=seed)
    click.echo(f"\nopen the console on it: slayer --home {settings().home} tui   (experiment {experiment})")
