"""The mode bar under the header: which screen is shown, the digit that opens each one, and F1."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from slayer_console.modes import MODES


class NavBar(Static):
    """One line: `1 Dashboard  2 Boxes …`, the current mode highlighted."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, current: str):
        super().__init__()
        self.current = current

    def render(self) -> Text:
        text = Text()
        for mode in MODES:
            style = "bold reverse" if mode.name == self.current else ""
            text.append(f" {mode.key} ", style="bold")
            text.append(f"{mode.label} ", style=style)
            text.append(" ")
        text.append("│ ", style="dim")
        text.append("F1", style="bold")
        text.append(" help")
        return text
