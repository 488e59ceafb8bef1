"""The boxes screen: every box from boxes.toml with what its last check found (GPUs, memory, disk,
python/torch/engine, cost); add, check (confirming unknown host keys), bootstrap, remove."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from slayer_console.screens.base import ModeScreen
from slayer_console.screens.box_form import BoxForm
from slayer_console.screens.confirm import ConfirmDialog
from slayer_console.widgets.vim_table import VimTable


def gpu_summary(report) -> str:
    if report is None:
        return ""
    if not report.gpus:
        return "no GPU"
    names = {g.name for g in report.gpus}
    busy = max(g.util_pct for g in report.gpus)
    count = f"{len(report.gpus)}×" if len(report.gpus) > 1 else ""
    return f"{count}{'/'.join(sorted(names))} {busy}%"


def box_cells(box, report, state: str | None) -> list:
    """Cells of one box row (the dashboard shows the same row)."""
    gib = (lambda v: "" if v is None else f"{v:.0f}G")
    cost = box.running_cost()
    if state:
        health = Text(state, style="cyan")
    elif report is None:
        health = Text("not checked", style="dim")
    elif report.problem:
        health = Text("problem", style="bold red")
    else:
        health = Text("ok", style="green")
    dot = Text("●" if report is not None and not report.problem else "○",
               style="green" if report is not None and not report.problem else "dim")
    return [dot + Text(f" {box.name}"), box.kind, box.address, report.arch if report else "", gpu_summary(report),
            gib(report.mem_available_gib) if report else "", gib(report.disk_free_gib) if report else "",
            f"${cost:.2f}" if cost is not None else "—", health]


BOX_COLUMNS = ("box", "kind", "address", "arch", "GPU", "mem free", "disk free", "cost", "state")


class BoxesScreen(ModeScreen):
    MODE = "boxes"
    AUTO_FOCUS = "#boxes"
    BINDINGS = [
        Binding("n", "add", "Add", id="boxes-add"),
        Binding("c", "check", "Check", id="boxes-check"),
        Binding("b", "bootstrap", "Bootstrap", id="boxes-bootstrap"),
        Binding("d", "remove", "Remove", id="boxes-remove"),
    ]

    @dataclass
    class Loaded(Message):
        boxes: dict

    def __init__(self):
        super().__init__()
        self.boxes: dict = {}
        self.states: dict[str, str] = {}  # box → "checking…" / "bootstrapping…" while a worker runs
        self.pending: tuple[str, bool] | None = None

    def body(self) -> ComposeResult:
        yield Static("Boxes (boxes.toml) — c checks reachability, GPUs, memory, disk and the engine",
                     classes="section-title")
        yield VimTable(id="boxes", cursor_type="row")
        yield Static("", id="box-detail")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#boxes", VimTable)
        for c in BOX_COLUMNS:
            table.add_column(c, key=c)

    def reload(self) -> None:
        self.load()

    @work(thread=True, group="boxes", exclusive=True, exit_on_error=False)
    def load(self) -> None:
        from remotes.boxes import load_boxes

        self.post_message(self.Loaded(load_boxes(self.app.settings.home)))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.boxes = event.boxes
        self.redraw()
        if self.pending and self.pending[0] in self.boxes:
            name, check = self.pending
            self.pending = None
            self.focus_box(name, check)

    def redraw(self) -> None:
        rows = [(name, box_cells(box, self.app.box_reports.get(name), self.states.get(name)))
                for name, box in self.boxes.items()]
        self.query_one("#boxes", VimTable).replace_rows(rows)
        self.update_detail()
        self.refresh_keys()

    def current(self):
        key = self.query_one("#boxes", VimTable).current_key()
        return self.boxes.get(key) if key else None

    @on(DataTable.RowSelected, "#boxes")
    def _row_chosen(self) -> None:
        self.action_check()

    @on(DataTable.RowHighlighted, "#boxes")
    def _row_moved(self) -> None:
        self.update_detail()
        self.refresh_keys()

    def update_detail(self) -> None:
        box = self.current()
        report = self.app.box_reports.get(box.name) if box else None
        if box is None:
            text = ""
        elif report is None:
            text = f"{box.name}: {box.address}, workdir {box.workdir or '—'} · c to check it"
        else:
            text = "\n".join(f"{k:9} {v}" for k, v in report.rows())
            if report.problem:
                text += f"\nproblem   {report.problem}"
        self.query_one("#box-detail", Static).update(Text(text))

    def focus_box(self, name: str, check: bool = False) -> None:
        """Put the cursor on a box (and check it) now, or as soon as the list shows it."""
        if not self.boxes or not self.query_one("#boxes", VimTable).move_to_key(name):
            self.pending = (name, check)
            return
        if check:
            self.action_check()

    # -- actions ----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        from remotes.drivers import driver_class

        box = self.current() if self.is_mounted else None
        if action == "check":
            return box is not None or None
        if action == "bootstrap":
            return (box is not None and driver_class(box).bootstraps and box.name not in self.states) or None
        if action == "remove":
            return (box is not None and not box.builtin and box.name not in self.states) or None
        return True

    def action_add(self) -> None:
        self.app.push_screen(BoxForm(), lambda fields: fields and self.add(fields))

    @work(thread=True, group="box-add", exit_on_error=False)
    def add(self, fields: dict) -> None:
        from pydantic import ValidationError

        from engine.jobs import describe_validation_error
        from remotes.boxes import Box, BoxError, load_boxes, parse_address, put_box

        home = self.app.settings.home
        if fields["name"] in load_boxes(home):
            raise BoxError(f"box {fields['name']!r} exists already; remove it first")
        user, host, port = parse_address(fields.pop("ssh"))
        try:
            box = Box(user=user, host=host, port=port, **fields)
        except ValidationError as err:
            raise BoxError(describe_validation_error(err, f"box {fields['name']}")) from None
        put_box(home, box)
        self.app.call_from_thread(self.focus_box, box.name, True)
        self.app.call_from_thread(self.reload)

    def action_check(self) -> None:
        box = self.current()
        if box is not None and box.name not in self.states:
            self.check(box)

    @work(group="box-check", exit_on_error=False)
    async def check(self, box) -> None:
        from remotes.drivers import driver_for

        self._busy(box.name, "checking…")
        try:
            driver = driver_for(self.app.settings.home, None, box)
            report = await driver.check(confirm=self.app.confirm_host_key)
            self.app.box_reports[box.name] = report
        finally:
            self._busy(box.name, None)
        if report.problem:
            self.notify(report.problem, severity="warning", timeout=10)

    def action_bootstrap(self) -> None:
        from remotes.drivers import driver_class

        box = self.current()
        if box is not None and driver_class(box).bootstraps:
            self.bootstrap(box)

    @work(group="box-bootstrap", exit_on_error=False)
    async def bootstrap(self, box) -> None:
        from remotes.drivers import driver_for

        self._busy(box.name, "bootstrapping…")
        try:
            report = await driver_for(self.app.settings.home, None, box).bootstrap(confirm=self.app.confirm_host_key)
        finally:
            self._busy(box.name, None)
        self.notify(f"box {box.name}: {report.mode}, engine {report.engine or '?'} with {report.python}")
        self.reload()

    def _busy(self, name: str, state: str | None) -> None:
        if state:
            self.states[name] = state
        else:
            self.states.pop(name, None)
        self.redraw()

    def action_remove(self) -> None:
        box = self.current()
        if box is not None and not box.builtin:
            self.app.push_screen(ConfirmDialog(f"Remove box {box.name} ({box.address})?"),
                                 lambda yes: yes and self.remove(box.name))

    @work(thread=True, group="box-remove", exit_on_error=False)
    def remove(self, name: str) -> None:
        from remotes.boxes import remove_box

        remove_box(self.app.settings.home, name)
        self.app.box_reports.pop(name, None)
        self.app.call_from_thread(self.reload)

