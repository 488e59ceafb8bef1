"""`slayer tui` (and bare `slayer`): open the console."""

from __future__ import annotations

import click

from slayer_console.commands.common import settings


@click.command()
@click.option("--experiment", default=None, help="open on this experiment's delta table")
def tui(experiment: str | None) -> None:
    """Open the console."""
    from slayer_console.app import make_app

    make_app(settings(), experiment=experiment, mode="deltas" if experiment else "dashboard").run()
