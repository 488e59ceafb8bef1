"""`slayer jobs kinds | example KIND`."""

from __future__ import annotations

import click

from slayer_console.commands.common import FORMAT, print_json, print_table


@click.group()
def jobs() -> None:
    """Job kinds and their example specs."""


@jobs.command("kinds")
@FORMAT
def kinds_cmd(fmt: str) -> None:
    """List job kinds with one-line descriptions."""
    from engine.jobs import kinds

    rows = [[k.name, k.description] for k in kinds()]
    if fmt == "json":
        print_json([{"kind": k, "description": d} for k, d in rows])
    else:
        print_table(None, ["kind", "description"], rows)


@jobs.command("example")
@click.argument("kind")
def example_cmd(kind: str) -> None:
    """Print a complete, commented example TOML for KIND (it runs as printed)."""
    from engine.jobs import get_kind

    click.echo(get_kind(kind, "slayer jobs example").example, nl=False)
