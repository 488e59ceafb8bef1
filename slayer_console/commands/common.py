"""Small pieces every subcommand shares: the settings object, JSON/table output."""

from __future__ import annotations

import json
import sys

import click

FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)


def settings():
    return click.get_current_context().obj


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def print_table(title: str | None, columns: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_edge=False, header_style="bold")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*["" if v is None else str(v) for v in r])
    console = Console()
    if not console.is_terminal:  # piped: never cut a wide delta table at 80 columns
        console = Console(width=max(console.width, 240))
    console.print(table)
