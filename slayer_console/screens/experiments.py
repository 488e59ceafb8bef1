"""The experiments screen: every experiment with its counts; for the focused one, its subjects (base,
references, checkpoints by step, merges, quants) and its runs. Enter opens the deltas."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.vocab import STATUS_STYLE
from slayer_console.screens.base import ModeScreen
from slayer_console.widgets.render import progress_bar
from slayer_console.widgets.vim_table import VimTable


class ExperimentsScreen(ModeScreen):
    MODE = "experiments"
    AUTO_FOCUS = "#experiments"
    BINDINGS = [Binding("o", "open", "Open deltas", id="experiments-open")]

    @dataclass
    class Loaded(Message):
        summaries: list

    @dataclass
    class Detail(Message):
        experiment: str
        subjects: list
        runs: list

    def __init__(self):
        super().__init__()
        self.shown: str | None = None  # the experiment whose subjects and runs are listed

    def body(self) -> ComposeResult:
        yield Static("Experiments", classes="section-title")
        yield VimTable(id="experiments", cursor_type="row")
        with Horizontal(id="experiment-detail"):
            with Vertical():
                yield Static("Subjects and checkpoints", classes="section-title")
                yield VimTable(id="subjects", cursor_type="row")
            with Vertical():
                yield Static("Runs", classes="section-title")
                yield VimTable(id="experiment-runs", cursor_type="row")

    def on_mount(self) -> None:
        super().on_mount()
        for table_id, columns in (("#experiments", ("experiment", "runs", "running", "subjects", "decisions")),
                                  ("#subjects", ("subject", "kind", "step", "run")),
                                  ("#experiment-runs", ("run", "kind", "status", "progress"))):
            table = self.query_one(table_id, VimTable)
            for c in columns:
                table.add_column(c, key=c)

    def reload(self) -> None:
        self.load()

    @work(thread=True, group="experiments", exclusive=True, exit_on_error=False)
    def load(self) -> None:
        from store.overview import experiment_summaries

        self.post_message(self.Loaded(experiment_summaries(self.app.store())))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        table = self.query_one("#experiments", VimTable)
        table.replace_rows([(e.name, [e.name, e.runs, e.active or "", e.subjects, e.decisions or ""])
                            for e in event.summaries])
        if self.shown is None and self.app.experiment:
            table.move_to_key(self.app.experiment)
        self.load_detail(table.current_key())

    @on(DataTable.RowHighlighted, "#experiments")
    def _moved(self, event: DataTable.RowHighlighted) -> None:
        self.load_detail(event.row_key.value)

    @work(thread=True, group="experiment-detail", exclusive=True, exit_on_error=False)
    def load_detail(self, experiment: str | None) -> None:
        if experiment is None:
            return
        from store.overview import list_subjects
        from store.queries import list_runs

        store = self.app.store()
        self.post_message(self.Detail(experiment, list_subjects(store, experiment), list_runs(store, experiment)))

    @on(Detail)
    def _detail(self, event: Detail) -> None:
        self.shown = event.experiment
        self.query_one("#subjects", VimTable).replace_rows(
            [(s.subject_id, [s.name, s.kind, "" if s.step is None else s.step, s.run_id or ""])
             for s in event.subjects])
        self.query_one("#experiment-runs", VimTable).replace_rows(
            [(r.id, [r.id, r.kind, Text(r.status, style=STATUS_STYLE.get(r.status, "")),
                     progress_bar(r.progress_done, r.progress_total)]) for r in event.runs])

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        if self.shown is None:
            return
        subject = None
        if self.focused is not None and self.focused.id == "subjects":
            subject = self.query_one("#subjects", VimTable).current_key()
        elif self.focused is not None and self.focused.id == "experiment-runs":
            self.app.show_run(self.query_one("#experiment-runs", VimTable).current_key())
            return
        self.app.open_deltas(self.shown, subject)
