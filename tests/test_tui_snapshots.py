"""Snapshots of the console's main screens (pytest-textual-snapshot), on a store built from fixed events:
no clocks, no random ids, pinned terminal sizes. Update with `pytest tests/test_tui_snapshots.py --snapshot-update`."""

from __future__ import annotations

import pytest
from tui_pilot import campaign, campaign_db, settled, until  # noqa: F401  (fixtures)

from slayer_console.app import make_app


@pytest.fixture
def with_box(campaign):
    """The campaign, plus an SSH box in boxes.toml (never contacted)."""
    (campaign.home / "boxes.toml").write_text('[gb10]\nuser = "op"\nhost = "gb10.lan"\nworkdir = "~/slayer"\n')
    return campaign


def ready(shown, *keys: str, check=None):
    """run_before: wait until `shown(app)` (the screen has its data) and every loader is done, press
    `keys` (letting loaders finish after each), then wait until `check(app)` if given."""
    async def run(pilot):
        await until(pilot, lambda: shown(pilot.app) and settled(pilot.app), what="the screen's data")
        for key in keys:
            await pilot.press(key)
            await until(pilot, lambda: settled(pilot.app), what="loaders")
        if check:
            await until(pilot, lambda: check(pilot.app))
        await pilot.pause(0.1)
    return run


def rows(table_id: str, n: int):
    return lambda app: app.screen.query(table_id) and app.screen.query_one(table_id).row_count == n


deltas_shown = rows("DeltaGrid", 6)


def test_dashboard(snap_compare, with_box):
    app = make_app(with_box, poll_s=0.2)
    assert snap_compare(app, terminal_size=(120, 30), run_before=ready(rows("#dash-verdicts", 5)))


def test_deltas_wide(snap_compare, campaign):
    app = make_app(campaign, poll_s=0.2, mode="deltas")
    assert snap_compare(app, terminal_size=(150, 24), run_before=ready(deltas_shown, "j", "l", "l", "l"))


def test_deltas_narrow_collapses_axes(snap_compare, campaign):
    app = make_app(campaign, poll_s=0.2, mode="deltas")
    assert snap_compare(app, terminal_size=(80, 24), run_before=ready(deltas_shown, "G", *"lllllll"))


def test_accept_dialog_on_fail(snap_compare, campaign):
    def steady_cursor(app):
        for field in app.screen.query("#reason"):
            field.cursor_blink = False  # a blinking cursor would make the picture depend on timing
            return True

    app = make_app(campaign, poll_s=0.2, mode="deltas")
    assert snap_compare(app, terminal_size=(100, 30),
                        run_before=ready(deltas_shown, "G", "a", check=steady_cursor))


def test_jobs(snap_compare, campaign):
    app = make_app(campaign, poll_s=0.2, mode="jobs")
    assert snap_compare(app, terminal_size=(110, 20), run_before=ready(rows("#runs", 1)))


def test_boxes(snap_compare, with_box):
    app = make_app(with_box, poll_s=0.2, mode="boxes")
    assert snap_compare(app, terminal_size=(110, 16), run_before=ready(rows("#boxes", 2), "j"))
