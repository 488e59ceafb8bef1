"""The launch dialog: a job spec from a template (`slayer jobs example KIND`) or a TOML file, editable,
plus where to run it (box) and under which experiment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, TextArea


@dataclass
class LaunchRequest:
    spec_text: str
    box: str
    experiment: str | None
    source: str  # the file it came from, or "template KIND"


class LaunchDialog(ModalScreen[LaunchRequest | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="launch-cancel"),
                Binding("ctrl+s", "launch", "Launch", id="launch-go")]

    def __init__(self, examples: dict[str, str], boxes: list[str], experiment: str | None, kind: str | None = None):
        super().__init__()
        self.examples, self.boxes, self.experiment, self.kind = examples, boxes, experiment, kind
        self.source = f"template {kind}" if kind else ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("Launch a job", classes="dialog-title")
            with Horizontal(classes="dialog-row"):
                yield Select([(k, k) for k in self.examples], prompt="template", id="kind",
                             value=self.kind if self.kind in self.examples else Select.NULL)
                yield Input(placeholder="…or a job TOML path, then Enter", id="path")
            yield TextArea(self.examples.get(self.kind, ""), id="spec", show_line_numbers=True)
            with Horizontal(classes="dialog-row"):
                yield Label("box ")
                yield Select([(b, b) for b in self.boxes], id="box", value="local", allow_blank=False)
                yield Label(" experiment ")
                yield Input(self.experiment or "", placeholder="from the spec, else default", id="experiment")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Launch", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Select.Changed, "#kind")
    def _template(self, event: Select.Changed) -> None:
        if event.value in self.examples:
            self.query_one("#spec", TextArea).load_text(self.examples[event.value])
            self.source = f"template {event.value}"

    @on(Input.Submitted, "#path")
    def _load_file(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        try:
            self.query_one("#spec", TextArea).load_text(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            self.notify(f"{path}: {e.strerror if isinstance(e, OSError) else 'not UTF-8 text'}", severity="error")
            return
        self.source = str(path)

    @on(Button.Pressed, "#ok")
    def action_launch(self) -> None:
        text = self.query_one("#spec", TextArea).text
        if not text.strip():
            self.notify("choose a template or load a job TOML first", severity="warning")
            return
        self.dismiss(LaunchRequest(text, str(self.query_one("#box", Select).value),
                                   self.query_one("#experiment", Input).value.strip() or None,
                                   self.source or "the launch dialog"))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
