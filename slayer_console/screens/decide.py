"""The accept / reject dialog: a required reason; accepting a row with a FAIL cell also needs the override
box ticked (and, by the store's rule, a reason that says 'override')."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from engine.vocab import VERDICTS


class DecideDialog(ModalScreen[tuple[str, bool] | None]):
    """Returns (reason, override) or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="decide-cancel"),
                Binding("ctrl+s", "submit", "Save", id="decide-save")]

    def __init__(self, subject: str, verdict: str, fails: list[str]):
        super().__init__()
        self.subject, self.verdict, self.fails = subject, verdict, fails
        self.needs_override = verdict == "accept" and bool(fails)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"{self.verdict.capitalize()} {self.subject}", classes="dialog-title")
            if self.fails:
                gates = ", ".join(self.fails)
                yield Static(f"{VERDICTS['FAIL'].label} on {gates}: a significant regression beyond tolerance."
                             + (" Accepting needs an explicit override, and a reason that says 'override' and why."
                                if self.needs_override else ""), classes="dialog-warning")
            yield Input(placeholder="reason (required)", id="reason")
            if self.needs_override:
                yield Checkbox("override the FAIL verdict", id="override")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.verdict.capitalize(), id="ok", variant="error" if self.needs_override else "primary",
                             disabled=True)
                yield Button("Cancel", id="cancel")

    def valid(self) -> bool:
        if not self.query_one("#reason", Input).value.strip():
            return False
        return not self.needs_override or self.query_one("#override", Checkbox).value

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _changed(self) -> None:
        self.query_one("#ok", Button).disabled = not self.valid()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def action_submit(self) -> None:
        if self.valid():
            self.dismiss((self.query_one("#reason", Input).value.strip(), self.needs_override))
        elif self.needs_override and not self.query_one("#override", Checkbox).value:
            self.notify("tick 'override' to accept a subject with a FAIL verdict", severity="warning")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
