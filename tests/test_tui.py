"""The console driven with a Pilot against a real store file: deltas, decisions, λ re-ranking, live
rows, launching and cancelling a local job, the command palette, narrow terminals, card export, and a
box check over real SSH that asks about the host key."""

from __future__ import annotations

from textual.widgets import Checkbox, TextArea
from sshd import sshd, sshd_factory  # noqa: F401  (fixtures)
from tui_campaign import GATES, base_outcomes, flipped, gate_event, ingest_events, subject
from tui_pilot import campaign, campaign_db, campaign_on  # noqa: F401  (fixtures)
from tui_pilot import fresh_settings, grid_names, star_row, type_text, until

from slayer_console.app import make_app
from slayer_console.screens.decide import DecideDialog
from slayer_console.screens.deltas import DeltasScreen
from slayer_console.screens.launch import LaunchDialog

def decisions(settings):
    from store.decisions import decisions_for

    return decisions_for(settings.store(), "slayer-v2")


async def open_deltas(pilot):
    await pilot.press("5")
    await until(pilot, lambda: isinstance(pilot.app.screen, DeltasScreen) and pilot.app.screen.grid.row_count,
                what="the delta table")
    return pilot.app.screen


async def move_to(pilot, name: str) -> None:
    """Walk down the delta table with j until the cursor is on `name` (from the top)."""
    await pilot.press("g")
    for _ in range(len(grid_names(pilot.app))):
        row, _ = pilot.app.screen.grid.focused()
        if row.name == name:
            return
        await pilot.press("j")
    raise AssertionError(f"{name} not in the delta table")


async def test_accept_a_checkpoint_with_a_reason(campaign_on):
    campaign = campaign_on
    app = make_app(campaign, poll_s=0.25)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await open_deltas(pilot)
        assert grid_names(app)[0] == "Qwen3.5-27B"  # the base stays on top
        await move_to(pilot, "ckpt-1600")
        assert "ckpt-1600" in str(screen.query_one("#deltas-detail").render())
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, DecideDialog), what="the reason dialog")
        await type_text(pilot, "clean gain")
        await pilot.press("enter")
        await until(pilot, lambda: decisions(campaign), what="the decision row")
        (d,) = decisions(campaign)
        assert (d.name, d.verdict, d.reason, d.override) == ("ckpt-1600", "accept", "clean gain", False)
        assert d.snapshot["row"]["name"] == "ckpt-1600" and d.snapshot["lambda"] == 1.0
        # the table shows it without a refresh key
        await until(pilot, lambda: app.screen.grid.table.row(d.subject_id).decision == "accept",
                    what="✓ in the table")
        assert "✓" in app.screen.grid.cell_label(d.subject_id, "mark")


async def test_reject_and_the_override_rule_on_fail(campaign):
    app = make_app(campaign, poll_s=0.25)
    async with app.run_test(size=(160, 40)) as pilot:
        await open_deltas(pilot)
        await move_to(pilot, "ckpt-3200")  # mbpp −15 pp, significant: FAIL
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, DecideDialog))
        assert not app.screen.query(Checkbox)  # rejecting needs no override
        await type_text(pilot, "mbpp")
        await pilot.press("enter")
        await until(pilot, lambda: decisions(campaign), what="the reject row")
        assert [(d.verdict, d.override) for d in decisions(campaign)] == [("reject", False)]

        # accepting it: the dialog refuses without the override box ticked
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, DecideDialog))
        dialog = app.screen
        assert "FAIL on mbpp" in str(dialog.query_one(".dialog-warning").render())
        await type_text(pilot, "override x")
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.screen is dialog and len(decisions(campaign)) == 1
        dialog.query_one(Checkbox).value = True
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(decisions(campaign)) == 2, what="the override row")
        last = decisions(campaign)[-1]
        assert (last.verdict, last.override, last.reason) == ("accept", True, "override x")

        # the store's rule holds through the console too: an override whose reason does not say so is refused
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, DecideDialog))
        await type_text(pilot, "fine")
        app.screen.query_one(Checkbox).value = True
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any("must say 'override'" in str(n.message) for n in app._notifications),
                    what="the refusal")
        assert len(decisions(campaign)) == 2


async def test_lambda_and_tolerance_rerank_live(campaign):
    app = make_app(campaign, poll_s=0.25)
    async with app.run_test(size=(160, 40)) as pilot:
        await open_deltas(pilot)
        assert grid_names(app)[1] == "ckpt-2400" and star_row(app) == "ckpt-2400"  # 9 − 1·3 = 6 beats 5
        await pilot.press("plus")
        await until(pilot, lambda: app.lam == 2.0 and star_row(app) == "ckpt-1600", what="re-rank at λ 2")
        names = grid_names(app)
        assert names[1] == "ckpt-1600" and names.index("ckpt-2400") > 1  # 5 beats 9 − 2·3 = 3
        assert "λ 2" in app.sub_title
        await pilot.press("minus", "minus")
        await until(pilot, lambda: app.lam == 0.5 and star_row(app) == "ckpt-2400", what="re-rank at λ 0.5")
        # a tolerance of 2 pp takes slayer-v1's −2 pp gsm8k within tolerance — where 200 items cannot see a 2 pp
        # drop (detectable ≥ 2.8 pp): UNDERPOWERED, not a reassuring PASS
        row = lambda: app.screen.grid.table.row(next(r.subject_id for r in app.screen.grid.order  # noqa: E731
                                                     if r.name == "slayer-v1"))
        assert row().cells["gsm8k"].verdict == "WARN"
        await pilot.press("t", "t", "t")
        await until(pilot, lambda: app.tolerance == 1.0 and row().cells["gsm8k"].verdict == "WARN")
        await pilot.press("t")
        await until(pilot, lambda: app.tolerance == 2.0 and row().cells["gsm8k"].verdict == "UNDERPOWERED",
                    what="UNDERPOWERED at tolerance 2")


async def test_new_gate_results_appear_without_a_key(campaign_on):
    campaign = campaign_on
    app = make_app(campaign, poll_s=0.25)
    async with app.run_test(size=(160, 40)) as pilot:
        await open_deltas(pilot)
        assert "ckpt-4000" not in grid_names(app)
        subj = subject("ckpt-4000", "checkpoint", 4000)
        events = [gate_event(subj, g, flipped(base_outcomes(g), 0, 30 if g == "style_pref" else 0)) for g in GATES]
        ingest_events(campaign.store(), "run-late", events, "slayer-v2")
        await until(pilot, lambda: "ckpt-4000" in grid_names(app), timeout=10, what="the new row")
        assert star_row(app) == "ckpt-4000"  # +15 pp style, nothing lost


async def test_narrow_terminal_collapses_axes(campaign):
    app = make_app(campaign, poll_s=0.25)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_deltas(pilot)
        assert "a:code" in screen.grid.column_keys and "g:mbpp" not in screen.grid.column_keys
        await move_to(pilot, "ckpt-3200")
        while screen.grid.focused()[1] != "a:code":
            await pilot.press("l")
        detail = str(screen.query_one("#deltas-detail").render())  # the axis: its gates pooled
        assert "axis code (1 gates pooled) -15.0 pp" in detail and detail.endswith("→ FAIL")
        await pilot.press("z")
        await until(pilot, lambda: "g:mbpp" in screen.grid.column_keys, what="expanded axes")


async def test_palette_finds_a_subject(campaign):
    app = make_app(campaign, poll_s=0.25)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("ctrl+p")
        await type_text(pilot, "ckpt-800")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DeltasScreen) and app.screen.grid.row_count
                    and app.screen.grid.focused()[0].name == "ckpt-800", what="the subject's row")


async def test_pareto_plot_help_and_card_export(campaign):
    app = make_app(campaign, poll_s=0.25)
    async with app.run_test(size=(160, 40)) as pilot:
        await open_deltas(pilot)
        await pilot.press("e")
        await until(pilot, lambda: app.screen.__class__.__name__ == "PathDialog")
        await pilot.press("enter")  # the default: $SLAYER_HOME/cards/EXPERIMENT.md
        card = campaign.home / "cards" / "slayer-v2.md"
        await until(pilot, card.exists, what="the exported card")
        assert card.read_text().startswith("---\n") and "# ckpt-2400" in card.read_text()  # the best, none accepted
        await pilot.press("p")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ParetoScreen")
        frontier = str(app.screen.query_one("#pareto-list").render())
        assert "★ ckpt-2400" in frontier and "ckpt-3200" in frontier and "ckpt-800" not in frontier
        await pilot.press("escape", "f1")
        await until(pilot, lambda: app.screen.__class__.__name__ == "HelpScreen")
        text = str(app.screen.query_one("#help-keys").render())
        assert "Accept" in text and "Pareto" in text


async def test_launch_and_cancel_a_local_job(tmp_path):
    settings = fresh_settings(tmp_path)
    app = make_app(settings, poll_s=0.25)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: "debug.sleep" in app.job_kinds, what="job kinds")
        await pilot.press("3", "n")
        await until(pilot, lambda: isinstance(app.screen, LaunchDialog))
        example = app.job_kinds["debug.sleep"].example
        app.screen.query_one(TextArea).load_text(example.replace("steps = 10 ", "steps = 100000 "))
        await pilot.press("ctrl+s")
        store = settings.store()
        from store.queries import get_run, list_runs

        run = (await until(pilot, lambda: [r for r in list_runs(store) if r.status == "running"], timeout=30,
                           what="the job running"))[0]
        await until(pilot, lambda: app.screen.query_one("#runs").current_key() == run.id, what="its row focused")
        await pilot.press("c")
        await until(pilot, lambda: get_run(store, run.id).status == "cancelled", timeout=20, what="cancelled")
        await until(pilot, lambda: "cancelled" in str(app.screen.query_one("#runs").get_cell(run.id, "status")))


async def test_checking_a_new_box_asks_about_its_host_key(sshd, tmp_path):
    from remotes.boxes import put_box
    from remotes.ssh import pinned_keys
    from slayer_console.screens.host_key import HostKeyDialog

    settings = fresh_settings(tmp_path)
    settings.home.mkdir(parents=True)
    # a python that does not exist: the check reports it without importing torch on the "box"
    put_box(settings.home, sshd.box("lab", workdir=str(tmp_path / "wd"), python=str(tmp_path / "no-python")))
    app = make_app(settings, poll_s=0.25, mode="boxes")
    async with app.run_test(size=(140, 30)) as pilot:
        await until(pilot, lambda: app.screen.query_one("#boxes").row_count == 2, what="the boxes")
        await pilot.press("j", "c")
        dialog = await until(pilot, lambda: isinstance(app.screen, HostKeyDialog) and app.screen, what="the dialog")
        assert sshd.fingerprint in dialog.explanation and not pinned_keys(settings.home, "127.0.0.1", sshd.port)
        await pilot.press("y")
        await until(pilot, lambda: "lab" in app.box_reports, timeout=60, what="the check's report")
        assert pinned_keys(settings.home, "127.0.0.1", sshd.port)
        assert "no working python" in app.box_reports["lab"].problem
        assert "problem" in app.screen.query_one("#boxes").get_row("lab")[-1].plain


HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "llama_cpp")

VISIT_EVERY_SCREEN = """
import asyncio, sys
from slayer_console.app import make_app
from slayer_console.context import Settings

async def main():
    app = make_app(Settings.create(sys.argv[1]), poll_s=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        for key in "2345":
            await pilot.press(key)
            await pilot.pause(0.3)
        while not app.job_kinds:
            await pilot.pause(0.1)
        await pilot.press("3", "n")
        await pilot.pause(0.3)
    print(" ".join(m for m in {heavy!r} if m in sys.modules))

asyncio.run(main())
"""


def test_the_console_never_loads_the_ml_stack(campaign):
    """Every screen, the job kinds and the launch dialog: torch and friends stay out of the TUI process."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", VISIT_EVERY_SCREEN.format(heavy=HEAVY), str(campaign.home)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""
