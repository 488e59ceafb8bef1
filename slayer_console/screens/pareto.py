"""The Pareto plot overlay of the deltas screen, with the frontier listed beside it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from slayer_console.widgets.pareto_plot import LEGEND, ParetoPlot


class ParetoScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,p,q", "dismiss", "Close", id="pareto-close")]

    def __init__(self, table, best_id: str | None):
        super().__init__()
        self.table, self.best_id = table, best_id

    def compose(self) -> ComposeResult:
        with Horizontal(id="pareto"):
            yield ParetoPlot(id="pareto-plot")
            yield Static(self.frontier_text(), id="pareto-list")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(ParetoPlot).draw(self.table, self.best_id)

    def frontier_text(self) -> Text:
        from store.deltas import pareto_frontier

        text = Text()
        for mark, colour, meaning in LEGEND:  # beside the plot: a legend inside it would cover points
            text.append(mark, style=colour)
            text.append(f" {meaning}  ")
        text.append("\n\nfrontier", style="bold")
        text.append(" (gain / worst drop / score)\n")
        for r in pareto_frontier(self.table):
            text.append("★ " if r.subject_id == self.best_id else "  ", style="bold yellow")
            text.append(f"{r.name}  {r.gain_pp or 0:+.1f} / {r.worst_regression_pp or 0:+.1f} / {r.score:.1f}\n")
        return text
