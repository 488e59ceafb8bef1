"""The add-box form: name, USER@HOST[:PORT], key, workdir, python — the fields of `slayer boxes add`."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

FIELDS = (("name", "name (letters, digits, . _ -)"), ("ssh", "USER@HOST[:PORT]"),
          ("key", "private key file (empty: ssh-agent and ~/.ssh keys)"), ("workdir", "workdir on the box (~/slayer)"),
          ("python", "python with the engine (empty: bootstrap makes a venv)"))


class BoxForm(ModalScreen[dict | None]):
    """Returns the filled fields (empty ones left out) or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="boxform-cancel"),
                Binding("ctrl+s", "save", "Save", id="boxform-save")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Add an SSH box", classes="dialog-title")
            for key, placeholder in FIELDS:
                yield Input(placeholder=placeholder, id=f"box-{key}")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Add", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted)
    def action_save(self) -> None:
        values = {k: self.query_one(f"#box-{k}", Input).value.strip() for k, _ in FIELDS}
        if not values["name"] or not values["ssh"]:
            self.notify("name and USER@HOST are required", severity="warning")
            return
        self.dismiss({k: v for k, v in values.items() if v})

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
