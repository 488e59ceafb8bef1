"""F1: the keys of the screen underneath (every binding, shown or not), the app keys and the legend."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

from engine.vocab import DECISIONS, VERDICTS
from slayer_console.modes import MODES



def legend() -> str:
    """What the delta table's marks and colours mean, from the verdicts themselves."""
    verdicts = "".join(f"  {v.mark if v.flag else v.style:<6} {v.name:<13}{v.meaning}\n"
                       for v in sorted(VERDICTS.values(), key=lambda v: v.rank) if v.rank > VERDICTS["NA"].rank)
    return ("Delta cells are subject − base in percentage points (metric units for non-proportion metrics such as\n"
            "grammar errors per 100 words); the colours know each metric's direction.\n" + verdicts +
            f"  ★      the Pareto-best row under the current λ and tolerance;  {DECISIONS['accept']} accepted  "
            f"{DECISIONS['reject']} rejected\n"
            "score = style gain − λ · max(0, worst general regression)\n"
            "Rows and statuses update by themselves as events are ingested; nothing needs a refresh key.\n"
            "Ctrl+P opens the command palette: experiments, subjects, jobs and boxes by name.")


def bindings_text(screen: Screen) -> Text:
    """Every active binding of `screen` (the focused widget's, the screen's, the app's), one per line."""
    text = Text()
    seen = set()
    for active in screen.active_bindings.values():
        b = active.binding
        if not b.description or (b.action, b.description) in seen:
            continue
        seen.add((b.action, b.description))
        where = "everywhere" if active.node is screen.app else type(active.node).__name__
        text.append(f"  {screen.app.get_key_display(b):<11}", style="bold")
        text.append(f"{b.description:<20}{where}")
        text.append("" if active.enabled else "  (not here)", style="dim")
        text.append("\n")
    return text


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="help-close")]

    def __init__(self, under: Screen):
        super().__init__()
        self.keys = bindings_text(under)  # taken now: once shown, the active screen is this one

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("Keys", style="bold"))
            yield Static(self.keys, id="help-keys")
            yield Static(Text(f"\nDigits {MODES[0].key}–{MODES[-1].key} switch screens: "
                              f"{', '.join(m.label for m in MODES)}.\n"
                              "j/k/h/l and g/G move in every table.\n", style="dim"))
            yield Static(Text("Legend", style="bold"))
            yield Static(Text(legend()))
        yield Footer(compact=True)
