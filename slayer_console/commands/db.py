"""`slayer db upgrade | status`."""

from __future__ import annotations

import click

from slayer_console.commands.common import settings


@click.group()
def db() -> None:
    """Store maintenance."""


@db.command("upgrade")
def upgrade_cmd() -> None:
    """Back up the store (SQLite) and migrate it to the current schema."""
    from store import Store

    st = Store.open(settings().url, upgrade=True)
    current, head = st.revisions()
    click.echo(f"{settings().url}: schema at {current} (head {head})")


@db.command("status")
def status_cmd() -> None:
    """Show the store's schema revision."""
    from store import Store

    st = Store.open(settings().url, upgrade=False)
    current, head = st.revisions()
    click.echo(f"{settings().url}: schema at {current} (head {head})")
