"""The dashboard: boxes, running jobs with progress, and the current experiment's verdicts by score,
with the latest decisions: what ran overnight and whether anything regressed, on one screen."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.vocab import ACTIVE, STATUS_STYLE
from slayer_console.screens.base import ModeScreen
from slayer_console.screens.boxes import BOX_COLUMNS, box_cells
from slayer_console.widgets.render import number, progress_bar, verdict_text
from slayer_console.widgets.vim_table import VimTable

TOP = 8  # verdict rows on the dashboard; the deltas screen has them all


class DashboardScreen(ModeScreen):
    MODE = "dashboard"
    AUTO_FOCUS = "#dash-verdicts"

    @dataclass
    class Loaded(Message):
        boxes: dict
        runs: list
        table: object | None
        best_id: str | None
        decisions: list

    def body(self) -> ComposeResult:
        yield Static("Boxes", classes="section-title")
        yield VimTable(id="dash-boxes", cursor_type="row")
        yield Static("Running jobs", classes="section-title")
        yield VimTable(id="dash-runs", cursor_type="row")
        yield Static("Verdicts", classes="section-title", id="dash-verdicts-title")
        yield VimTable(id="dash-verdicts", cursor_type="row")
        yield Static("", id="dash-decisions")

    def on_mount(self) -> None:
        super().on_mount()
        for table_id, columns in (("#dash-boxes", BOX_COLUMNS),
                                  ("#dash-runs", ("run", "kind", "experiment", "box", "progress", "label")),
                                  ("#dash-verdicts", ("subject", "kind", "verdict", "style gain", "worst drop",
                                                      "score", "★", "decision"))):
            table = self.query_one(table_id, VimTable)
            for c in columns:
                table.add_column(c, key=c)
        for name in ("lam", "tolerance", "experiment"):
            self.watch(self.app, name, self._store_changed, init=False)

    def reload(self) -> None:
        self.load(self.app.experiment, self.app.lam, self.app.tolerance)

    @work(thread=True, group="dashboard", exclusive=True, exit_on_error=False)
    def load(self, experiment: str | None, lam: float, tolerance: float | None) -> None:
        from remotes.boxes import load_boxes
        from slayer_console.live import default_experiment
        from store.overview import recent_decisions
        from store.queries import list_runs

        store = self.app.store()
        boxes = load_boxes(self.app.settings.home)
        runs = [r for r in list_runs(store, limit=200) if r.status in ACTIVE]
        if experiment is None:
            experiment = default_experiment(store)
            if experiment is not None:
                self.app.call_from_thread(setattr, self.app, "experiment", experiment)
        table = best_id = None
        if experiment is not None:
            table, best_id = self.app.deltas.scored(store, experiment, lam, tolerance)
        self.post_message(self.Loaded(boxes, runs, table, best_id, recent_decisions(store, 3)))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        t = event.table
        if t is not None and (t.lam, t.tolerance_pp) != (self.app.lam, self.app.tolerance):
            return  # computed for a λ or tolerance the keys have since left; the newer load follows
        self.query_one("#dash-boxes", VimTable).replace_rows(
            [(name, box_cells(box, self.app.box_reports.get(name), None)) for name, box in event.boxes.items()])
        self.query_one("#dash-runs", VimTable).replace_rows(
            [(r.id, [r.id, r.kind, r.experiment or "", r.box, progress_bar(r.progress_done, r.progress_total),
                     Text(r.status, style=STATUS_STYLE.get(r.status, ""))]) for r in event.runs])
        self.show_verdicts(event.table, event.best_id)
        lines = [f"{d.experiment} · {d.subject}: {d.verdict}{' (override)' if d.override else ''} by {d.actor} — "
                 f"{d.reason}" for d in event.decisions]
        self.query_one("#dash-decisions", Static).update(
            Text("Latest decisions\n" + "\n".join(lines)) if lines else Text("No decisions yet.", style="dim"))

    def show_verdicts(self, table, best_id: str | None) -> None:
        title = self.query_one("#dash-verdicts-title", Static)
        verdicts = self.query_one("#dash-verdicts", VimTable)
        if table is None:
            title.update("Verdicts — no experiment with subjects yet")
            verdicts.replace_rows([])
            return
        from store.deltas import ranked

        rows = ranked(table)
        title.update(f"Verdicts — {table.experiment}: {len(rows)} candidates by score (5 opens the delta table)")
        verdicts.replace_rows([(r.subject_id, [
            r.name, r.kind, verdict_text(r.verdict), number(r.style_gain_pp), number(r.worst_regression_pp),
            number(r.score, ".1f"), Text("★" if r.subject_id == best_id else "", style="bold yellow"),
            r.decision or ""]) for r in rows[:TOP]])

    @on(DataTable.RowSelected, "#dash-verdicts")
    def _open(self, event: DataTable.RowSelected) -> None:
        if self.app.experiment:
            self.app.open_deltas(self.app.experiment, event.row_key.value)

    @on(DataTable.RowSelected, "#dash-runs")
    def _open_run(self, event: DataTable.RowSelected) -> None:
        self.app.show_run(event.row_key.value)
