"""Names that identify: merge candidates named after their parent checkpoint, no epoch-end near-duplicate
checkpoint, subject names and gate heads that never cut to the same text, a Pareto legend beside the plot."""

from __future__ import annotations

import pytest
from tui_campaign import base_outcomes, build_campaign, flipped, gate_event, ingest_events, subject
from tui_pilot import fresh_settings, until

from engine.train.callbacks import near_a_save
from slayer_console.app import make_app
from slayer_console.screens.deltas import DeltasScreen
from slayer_console.widgets.shorten import distinct, middle

NAMES = ["sft-replay-ckpt-30", "sft-replay-ckpt-60", "sft-replay-ckpt-30 ×0.3", "sft-replay-ckpt-30 ×0.5",
         "sft-replay-ckpt-30 ×0.7", "sft-replay-ckpt-30 ties d0.5", "sft-replay-ckpt-60 ties d0.5",
         "sft-no-replay-ckpt-30", "sft-no-replay-ckpt-90", "sft-no-replay-ckpt-90 ×0.5"]


def test_cuts_from_the_middle_never_coincide():
    assert middle("sft-replay-ckpt-30 ×0.5", 18) == "sft-repla…-30 ×0.5"
    for width in (10, 14, 18, 24):
        cuts = distinct(NAMES, width)
        assert len(set(cuts.values())) == len(NAMES) and all(len(c) <= width for c in cuts.values())
    long = ["a" * 30 + "1" + "b" * 30, "a" * 30 + "2" + "b" * 30]  # differ only deep in the middle
    assert len(set(distinct(long, 12).values())) == 2


@pytest.mark.parametrize("step, last, save_steps, max_steps, near", [
    (31, 30, 30, 90, True),    # epoch ends a step after a step save: one subject
    (29, 0, 30, 90, True),     # a step save is due a step later
    (45, 30, 30, 90, False),   # far from both
    (89, 60, 30, 90, True),    # the final step (always saved) is next
    (2, 0, 30, 90, False),     # nothing saved yet: step 0 is the base, not a checkpoint
])
def test_an_epoch_end_save_defers_to_a_nearby_step_save(step, last, save_steps, max_steps, near):
    assert near_a_save(step, last, save_steps, max_steps) is near


@pytest.mark.parametrize("size", [(160, 45), (80, 24)])
async def test_delta_table_cuts_identify_and_focus_shows_the_full_name(tmp_path, size):
    settings = fresh_settings(tmp_path)
    plan = {"tiny-base": ("base", None, {})}
    plan.update({n: ("merge" if " " in n else "checkpoint", int(n.split("-")[-1].split()[0]), {
        "style_pref": (0, 2 + i)}) for i, n in enumerate(NAMES)})
    subjects = build_campaign(settings.store(), "demo", plan)
    ingest_events(settings.store(), "run-pl", [  # two gates whose short names share their first five letters
        gate_event(s, gate, flipped(base_outcomes(gate), 0, 0), axis="pl_nlu")
        for s in subjects.values() for gate in ("polemo2_in", "polemo2_out")], "demo")
    app = make_app(settings, poll_s=0.25)
    async with app.run_test(size=size) as pilot:
        await pilot.press("5")
        await until(pilot, lambda: isinstance(app.screen, DeltasScreen) and app.screen.grid.row_count,
                    what="the delta table")
        grid = app.screen.grid
        drawn = [grid.cell_label(r.subject_id, "subject") for r in grid.order]
        assert len(set(drawn)) == len(drawn) == len(NAMES) + 1, drawn
        heads = [(c.top, c.bottom) for c in grid.columns]  # 80 columns: one per axis, its label over "worst"
        assert len(set(heads)) == len(heads), heads
        if size[0] == 160:
            assert {"pol…in", "pol…ut"} <= {c.bottom for c in grid.columns}, heads
        await pilot.press("g")
        for row in grid.order[1:4]:
            await pilot.press("j")
            assert app.screen.query_one("#deltas-detail").render().plain.startswith(row.name + " ·")
        await pilot.press("p")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ParetoScreen")
        plot = app.screen.query_one("#pareto-plot")
        canvas = plot.plt.build()
        assert "frontier" not in canvas and "dominated" not in canvas  # no legend drawn over the points
        assert "dominated" in app.screen.query_one("#pareto-list").render().plain
