"""`slayer tui` (and bare `slayer`): open the console."""

from __future__ import annotations

import click

from slayer_console.commands.common import settings


@click.command()
def tui() -> None:
    """Open the console."""
    from slayer_console.app import make_app

    make_app(settings()).run()
