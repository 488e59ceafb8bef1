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
@click.option("--for", "box", default=None, metavar="BOX",
              help="a Qwen3.5-27B recipe sized for this box (gb10, 3090, vast-4x3090), or a named one "
                   "(gate --for rebaseline)")
def example_cmd(kind: str, box: str | None) -> None:
    """Print a complete, commented example TOML for KIND (it runs as printed, on the embedded tiny model), or with
    --for the campaign's recipe for a box."""
    from engine.jobs import get_kind

    get_kind(kind, "slayer jobs example")
    if box is None:
        click.echo(get_kind(kind).example, nl=False)
        return
    from engine.recipes import recipe

    click.echo(recipe(kind, box), nl=False)
