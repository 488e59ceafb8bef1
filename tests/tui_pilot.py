"""Pilot helpers for the TUI tests: the campaign store fixtures, waiting for a condition, typing."""

from __future__ import annotations

import shutil
import time

import pytest

from slayer_console.context import Settings

SPECIAL = {" ": "space", ":": "colon", "-": "minus", "'": "apostrophe", ",": "comma", ".": "full_stop"}


def fresh_settings(tmp_path) -> Settings:
    return Settings.create(str(tmp_path / "home"))


@pytest.fixture(scope="module")
def campaign_db(tmp_path_factory):
    """The campaign store, built once per test module (migrations and ingest cost seconds)."""
    from tui_campaign import build_campaign

    settings = fresh_settings(tmp_path_factory.mktemp("campaign"))
    build_campaign(settings.store())
    settings.store().close()  # the last connection checkpoints the WAL into the file
    return settings.home / "slayer.db"


@pytest.fixture
def campaign(campaign_db, tmp_path) -> Settings:
    """A fresh home whose store is a copy of the campaign store."""
    settings = fresh_settings(tmp_path)
    settings.home.mkdir(parents=True)
    shutil.copyfile(campaign_db, settings.home / "slayer.db")
    yield settings
    settings.store().close()


@pytest.fixture(params=["sqlite", "postgresql"])
def campaign_on(request, tmp_path) -> Settings:
    """The campaign store on SQLite (a copy of the file) or built into a new PostgreSQL database."""
    if request.param == "sqlite":
        yield request.getfixturevalue("campaign")
        return
    from conftest import new_postgres_database
    from tui_campaign import build_campaign

    settings = Settings.create(str(tmp_path / "home"), new_postgres_database(request.getfixturevalue("postgres_server")))
    settings.home.mkdir(parents=True)
    build_campaign(settings.store())
    yield settings
    settings.store().close()


async def until(pilot, predicate, timeout: float = 15.0, what: str = "condition"):
    """Let the app run until `predicate()` is truthy (workers and polls finish in their own time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def type_text(pilot, text: str) -> None:
    await pilot.press(*[SPECIAL.get(c, c) for c in text])


def grid_names(app) -> list[str]:
    """Subject names of the delta table, top to bottom."""
    return [r.name for r in app.screen.grid.order]


def star_row(app) -> str | None:
    grid = app.screen.grid
    return next((r.name for r in grid.order if r.subject_id == grid.best_id), None)


def settled(app) -> bool:
    """Every loader has finished (the live poll and log tails run forever and do not count)."""
    return app.stamp is not None and not [w for w in app.workers
                                          if w.group not in ("poll", "log-tail") and w.is_running]
