"""The Pareto frontier as a terminal plot: every candidate at (worst general regression, gain — the score's gain
term, style + w_nlu · KLEJ by default), the frontier joined by a line, the best under the current λ labelled."""

from __future__ import annotations

from textual_plotext import PlotextPlot


LEGEND = (("●", "cyan", "frontier"), ("•", "grey50", "dominated"), ("★", "yellow", "best under λ"))


class ParetoPlot(PlotextPlot):
    """Call `draw(table, best_id)` with a store.deltas.DeltaTable (already re-scored). No series carries a
    label: plotext draws its legend inside the canvas, over points; the legend is beside the plot (LEGEND)."""

    def draw(self, table, best_id: str | None) -> None:
        from store.deltas import pareto_frontier

        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        rows = [r for r in table.rows if r.verdict != "BASE" and r.score is not None]
        front = pareto_frontier(table)
        front_ids = {r.subject_id for r in front}
        others = [r for r in rows if r.subject_id not in front_ids]
        if others:
            plt.scatter([r.worst_regression_pp or 0.0 for r in others], [r.gain_pp or 0.0 for r in others],
                        marker="dot", color="gray")
        if front:
            ordered = sorted(front, key=lambda r: r.worst_regression_pp or 0.0)
            plt.plot([r.worst_regression_pp or 0.0 for r in ordered], [r.gain_pp or 0.0 for r in ordered],
                     marker="braille", color="cyan")
            plt.scatter([r.worst_regression_pp or 0.0 for r in ordered], [r.gain_pp or 0.0 for r in ordered],
                        marker="●", color="cyan")
        for r in rows:
            if r.subject_id == best_id:
                plt.text(f"★ {r.name}", r.worst_regression_pp or 0.0, r.gain_pp or 0.0, color="yellow")
        plt.title(f"{table.experiment}: gain vs worst general regression (pp) · score = {table.config.formula(table.lam)}")
        plt.xlabel("worst general regression (pp, lower is better)")
        plt.ylabel("gain (pp)")
        self.refresh()
