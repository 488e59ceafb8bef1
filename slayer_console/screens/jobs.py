"""The jobs screen: every run with live status and progress, launch (template or TOML), cancel, attach,
and the focused run's log tail."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.vocab import ACTIVE, LOST, STATUS_STYLE
from slayer_console.screens.base import ModeScreen
from slayer_console.screens.launch import LaunchDialog, LaunchRequest
from slayer_console.widgets.log_tail import LogTail
from slayer_console.widgets.render import duration, progress_bar
from slayer_console.widgets.vim_table import VimTable


def shown_status(run, driver) -> str:
    """The stored status, or "lost" for an active run whose process its box's driver sees gone."""
    if run.status in ACTIVE and driver is not None and driver.alive(run) is False:
        return LOST
    return run.status


def drivers_of(settings, store, boxes) -> dict:
    """Box name → its driver (remotes.drivers); None for a box no longer in boxes.toml."""
    from remotes.boxes import BoxError
    from remotes.drivers import driver_for

    drivers = {}
    for box in boxes:
        try:
            drivers[box] = driver_for(settings.home, store, box)
        except BoxError:
            drivers[box] = None
    return drivers


def fit(latest: dict) -> str:
    """A training run's last loss and drift from the base (KL), side by side."""
    shown = [f"{latest[k][1]:.3g}" if k in latest else "–" for k in ("loss", "drift_kl")]
    return "" if not latest else " · ".join(shown)


class JobsScreen(ModeScreen):
    MODE = "jobs"
    AUTO_FOCUS = "#runs"
    BINDINGS = [
        Binding("n", "launch", "Launch", id="jobs-launch"),
        Binding("c", "cancel_run", "Cancel", id="jobs-cancel"),
        Binding("a", "attach", "Attach", id="jobs-attach"),
        Binding("o", "open_deltas", "Deltas", id="jobs-deltas"),
    ]

    @dataclass
    class Loaded(Message):
        runs: list
        statuses: dict
        drivers: dict  # box name → driver
        latest: dict  # run id → {"loss" | "drift_kl": (step, value)}

    def __init__(self):
        super().__init__()
        self.runs: dict[str, object] = {}
        self.statuses: dict[str, str] = {}
        self.drivers: dict[str, object] = {}
        self.pending_focus: str | None = None

    def body(self) -> ComposeResult:
        yield Static("Runs (newest first)", classes="section-title")
        yield VimTable(id="runs", cursor_type="row")
        yield LogTail(id="log")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#runs", VimTable)
        table.add_column("run", key="run")
        table.add_column("experiment", key="experiment")
        table.add_column("kind", key="kind")
        table.add_column("status", key="status")
        table.add_column("progress", key="progress", width=24)
        table.add_column("loss · drift", key="fit")
        table.add_column("box", key="box")
        table.add_column("time", key="time")

    def reload(self) -> None:
        self.load()

    @work(thread=True, group="jobs", exclusive=True, exit_on_error=False)
    def load(self) -> None:
        from store.queries import latest_metrics, list_runs

        store = self.app.store()
        runs = list_runs(store, limit=500)
        drivers = drivers_of(self.app.settings, store, {r.box for r in runs})
        latest = latest_metrics(store, [r.id for r in runs if r.kind.startswith("train.")])
        self.post_message(self.Loaded(runs, {r.id: shown_status(r, drivers[r.box]) for r in runs}, drivers, latest))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.runs = {r.id: r for r in event.runs}
        self.statuses, self.drivers = event.statuses, event.drivers
        rows = []
        for r in event.runs:
            status = event.statuses[r.id]
            rows.append((r.id, [r.id, r.experiment or "", r.kind, Text(status, style=STATUS_STYLE.get(status, "")),
                                progress_bar(r.progress_done, r.progress_total), fit(event.latest.get(r.id, {})), r.box,
                                duration(r.started_ms, r.ended_ms)]))
        table = self.query_one("#runs", VimTable)
        table.replace_rows(rows)
        if self.pending_focus and table.move_to_key(self.pending_focus):
            self.pending_focus = None
        self._follow_log()
        self.refresh_keys()

    def focus_run(self, run_id: str) -> None:
        """Put the cursor on a run's row now, or as soon as the list shows it."""
        if not self.runs or not self.query_one("#runs", VimTable).move_to_key(run_id):
            self.pending_focus = run_id

    def current(self):
        key = self.query_one("#runs", VimTable).current_key()
        return self.runs.get(key) if key else None

    @on(DataTable.RowHighlighted, "#runs")
    def _row_moved(self) -> None:
        self._follow_log()
        self.refresh_keys()

    def _follow_log(self) -> None:
        run = self.current()
        log = self.query_one(LogTail)
        driver = self.drivers.get(run.box) if run is not None else None
        path = driver.log_path(run) if driver is not None else None
        if run is None or not run.run_dir:
            log.follow(None)
        elif path is not None:
            log.follow(path, header=f"── {run.id} log.txt ──")
        else:
            log.follow(None, header=f"── {run.id} runs on box {run.box}: its log stays there; "
                                    f"its events are followed live ──")

    # -- actions ----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("cancel_run", "attach"):
            run = self.current() if self.is_mounted else None
            if run is None or self.statuses.get(run.id) not in ACTIVE:
                return None
            driver = self.drivers.get(run.box)
            return (driver is not None and (not driver.local or action == "cancel_run")) or None
        if action == "open_deltas":
            run = self.current() if self.is_mounted else None
            return (run is not None and bool(run.experiment)) or None
        return True

    def action_launch(self, kind: str | None = None) -> None:
        examples = {k: v.example for k, v in sorted(self.app.job_kinds.items())}
        dialog = LaunchDialog(examples, self.app.box_names, self.app.experiment, kind)
        self.app.push_screen(dialog, lambda req: req and self.launch(req))

    @work(group="launch", exit_on_error=False)
    async def launch(self, request: LaunchRequest) -> None:
        import asyncio

        from slayer_console.launching import launch

        store = await asyncio.to_thread(self.app.store)
        _, handle, follow = await launch(self.app.settings, store, request, self.app.confirm_host_key)
        if follow:  # other local runs are ingested by the app's poll
            self.app.follow_remote(handle.run_id)
        self.notify(f"launched {handle.run_id} on {request.box}")
        self.focus_run(handle.run_id)
        self.reload()

    def action_cancel_run(self) -> None:
        run = self.current()
        if run is not None:
            self.cancel(run)

    @work(group="cancel", exit_on_error=False)
    async def cancel(self, run) -> None:
        import asyncio

        from engine.errors import SpecError

        self.notify(f"cancelling {run.id} on {run.box}…")
        driver = self.drivers.get(run.box)
        if driver is None:
            self.notify(f"box {run.box} is not in boxes.toml", severity="error")
            return
        try:
            status = await driver.cancel(run.id)
        except SpecError:
            self.notify(f"{run.id} is not running", severity="warning")
            return
        self.notify(f"{run.id} {status}")

    def action_attach(self) -> None:
        run = self.current()
        if run is not None:
            self.app.follow_remote(run.id)
            self.notify(f"following {run.id} on {run.box}")

    def action_open_deltas(self) -> None:
        run = self.current()
        if run is not None and run.experiment:
            self.app.open_deltas(run.experiment)
