"""Pilot helpers for the TUI tests: a settings object on a fresh home, waiting for a condition, typing."""

from __future__ import annotations

import time

from slayer_console.context import Settings

SPECIAL = {" ": "space", ":": "colon", "-": "minus", "'": "apostrophe", ",": "comma", ".": "full_stop"}


def fresh_settings(tmp_path) -> Settings:
    return Settings.create(str(tmp_path / "home"))


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
