"""The deltas screen, the heart of the console: the live delta table of one experiment, the detail line
of the focused cell, λ / tolerance re-ranking, sort and filters, accept / reject, Pareto plot, card."""

from __future__ import annotations

from dataclasses import dataclass, replace

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static

from engine.vocab import COMPARED, axis_label
from slayer_console.screens.base import ModeScreen
from slayer_console.screens.decide import DecideDialog
from slayer_console.widgets.delta_grid import DeltaGrid, GridView, needed_width

VERDICT_FILTERS = (None, *COMPARED)


class DeltasScreen(ModeScreen):
    MODE = "deltas"
    AUTO_FOCUS = "DeltaGrid"
    BINDINGS = [
        Binding("a", "decide('accept')", "Accept", id="deltas-accept"),
        Binding("r", "decide('reject')", "Reject", id="deltas-reject"),
        Binding("plus,equals_sign", "lam(1)", "λ", key_display="+/-", id="deltas-lambda-up"),
        Binding("minus", "lam(-1)", "λ down", show=False, id="deltas-lambda-down"),
        Binding("t", "tolerance(1)", "tol", key_display="t/T", id="deltas-tolerance-up"),
        Binding("T", "tolerance(-1)", "tol down", show=False, id="deltas-tolerance-down"),
        Binding("s", "sort", "Sort", id="deltas-sort"),
        Binding("v", "verdict_filter", "Verdict", id="deltas-verdict"),
        Binding("x", "axis_filter", "Axis", id="deltas-axis"),
        Binding("z", "collapse", "Axes", id="deltas-collapse"),
        Binding("p", "pareto", "Pareto", id="deltas-pareto"),
        Binding("c", "card", "Card", id="deltas-card"),
        Binding("e", "export", "Export", id="deltas-export"),
        Binding("m", "merge", "Merge", id="deltas-merge"),
    ]

    @dataclass
    class Loaded(Message):
        """A delta table computed (and re-scored) in the loader worker."""

        experiment: str | None
        table: object | None
        best_id: str | None

    def __init__(self):
        super().__init__()
        self.table = None  # the re-scored store.deltas.DeltaTable on screen
        self.best_id: str | None = None
        self.view = GridView()
        self.collapse_choice: bool | None = None  # None: collapse when the terminal is too narrow
        self.pending_focus: str | None = None

    def body(self) -> ComposeResult:
        yield Static("computing the delta table (paired statistics per subject × gate)…", id="deltas-title")
        yield DeltaGrid(id="deltas-grid")
        yield Static("", id="deltas-detail")

    @property
    def grid(self) -> DeltaGrid:
        return self.query_one(DeltaGrid)

    def on_mount(self) -> None:
        super().on_mount()
        for name in ("lam", "tolerance", "experiment"):
            self.watch(self.app, name, self._app_changed, init=False)

    def _app_changed(self) -> None:
        if self.is_current:
            self.reload()

    # -- loading ----------------------------------------------------------------------------------
    def reload(self) -> None:
        self.load(self.app.experiment, self.app.lam, self.app.tolerance)

    @work(thread=True, group="deltas", exclusive=True, exit_on_error=False)
    def load(self, experiment: str | None, lam: float, tolerance: float | None) -> None:
        from slayer_console.live import default_experiment

        store = self.app.store()
        if experiment is None:
            experiment = default_experiment(store)
            if experiment is None:
                self.post_message(self.Loaded(None, None, None))
                return
            self.app.call_from_thread(setattr, self.app, "experiment", experiment)
        self.post_message(self.Loaded(experiment, *self.app.deltas.scored(store, experiment, lam,
                                                                          tolerance)))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        t = event.table
        if t is not None and (t.experiment, t.lam, t.tolerance_pp) != (self.app.experiment, self.app.lam,
                                                                       self.app.tolerance):
            return  # a stale answer (the keys moved on while it was computed): the newer one follows
        self.table, self.best_id = event.table, event.best_id
        self.redraw()

    def redraw(self) -> None:
        title = self.query_one("#deltas-title", Static)
        if self.table is None:
            title.update("No experiment with subjects yet: run gates on a base and a checkpoint "
                         "(3 Jobs, n) or `slayer demo`.")
            self.grid.clear()
            return
        self.view = replace(self.view, collapsed=self.is_collapsed())
        self.grid.show(self.table, self.view, self.best_id)
        if self.pending_focus and self.grid.move_to_key(self.pending_focus):
            self.pending_focus = None
        title.update(self.title_text())
        self.update_detail()
        self.refresh_keys()

    def is_collapsed(self) -> bool:
        if self.collapse_choice is not None:
            return self.collapse_choice
        gates = [g for g in self.table.gates if self.view.axis in (None, g[1])]
        return needed_width(len(gates)) > self.size.width

    def on_resize(self) -> None:
        if self.table is not None and self.collapse_choice is None and self.is_collapsed() != self.view.collapsed:
            self.redraw()

    def title_text(self) -> str:
        t, v = self.table, self.view
        base = next((r.name for r in t.rows if r.subject_id == t.base_subject_id), "—")
        parts = [f"Deltas vs {t.against} (pp) · {t.experiment} · base {base}",
                 f"{len(t.rows)} subjects × {len(t.gates)} gates", f"sort {v.sort}{'↓' if v.descending else '↑'}"]
        if v.verdict:
            parts.append(f"only {v.verdict}")
        if v.axis:
            parts.append(f"axis {axis_label(v.axis)}")
        if v.collapsed:
            parts.append("axes collapsed (z)")
        return " · ".join(parts)

    def focus_subject(self, subject_id: str) -> None:
        """Put the cursor on a subject's row now, or as soon as the table shows it."""
        if self.table is None or not self.grid.move_to_key(subject_id):
            self.pending_focus = subject_id

    # -- the detail line --------------------------------------------------------------------------
    @on(DeltaGrid.CursorMoved, "#deltas-grid")
    def _cell_moved(self) -> None:
        self.update_detail()
        self.refresh_keys()

    def update_detail(self) -> None:
        self.query_one("#deltas-detail", Static).update(self.detail_text())

    def detail_text(self) -> str:
        row, col = self.grid.focused()
        if row is None:
            return ""
        lam = self.app.lam
        if row.verdict == "BASE":
            return f"{row.name} · the base: cells show its own scores; every other row is compared with it"
        if col in ("score", "mark"):
            if row.score is None:
                return f"{row.name} · no score (nothing compared with the base yet)"
            gains = " + ".join(f"{w:g}×{a} {row.axis_gains_pp.get(a, 0.0):+.1f}"
                               for a, w in self.table.config.weights.items() if w)
            return (f"{row.name} · score {row.score:.1f} = {gains or 0} − λ {lam:g} × "
                    f"max(0, worst general regression {row.worst_regression_pp or 0:+.1f}) · verdict {row.verdict}")
        if col == "subject":
            step = f" step {row.step}" if row.step is not None else ""
            return (f"{row.name} · {row.kind}{step} · verdict {row.verdict} · "
                    f"decision {row.decision or 'none'} · a accept, r reject")
        cell = self.grid.cell_of(row, col)
        if cell is None:
            return row.name
        worst = col.startswith("a:") and not row.axes  # the base row: the axis's worst own value
        prefix = f"{row.name} · " + (f"{axis_label(cell.axis)} worst: " if worst else "")
        note = f" · {cell.note}" if cell.note and cell.verdict in COMPARED else ""
        axis = row.axes.get(cell.axis) if col.startswith("g:") else None  # the verdict the plan's tolerance reads
        if axis is not None and axis.gain_pp is not None:
            note += f" · axis {axis_label(cell.axis)} pooled: {axis.gain_pp:+.1f} pp, n={axis.n} → {axis.verdict}"
        return prefix + cell.detail() + note

    # -- actions ----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "decide":
            row, _ = self.grid.focused() if self.is_mounted else (None, None)
            return bool(row is not None and row.verdict != "BASE") or None
        if action in ("pareto", "sort", "verdict_filter", "axis_filter", "collapse", "card", "export"):
            return self.table is not None or None
        if action == "merge":
            return any(k.startswith("merge") for k in getattr(self.app, "job_kinds", ())) or None
        return True

    def action_decide(self, verdict: str) -> None:
        row, _ = self.grid.focused()
        if row is None or row.verdict == "BASE":
            return
        fails = [g for g, c in row.cells.items() if c.verdict == "FAIL"]
        self.app.push_screen(DecideDialog(row.name, verdict, fails),
                             lambda answer: answer and self.save_decision(row.subject_id, row.name, verdict, *answer))

    @work(thread=True, group="decide", exit_on_error=False)
    def save_decision(self, subject_id: str, name: str, verdict: str, reason: str, override: bool) -> None:
        from store.decisions import decide

        decide(self.app.store(), subject_id, verdict, reason, override=override, lam=self.app.lam,
               tolerance=self.app.tolerance, experiment=self.table.experiment,
               config_for=self.app.settings.experiment_config)
        self.app.call_from_thread(self.notify, f"{name}: {verdict}ed" + (" (override)" if override else ""))

    def action_lam(self, step: int) -> None:
        self.app.change_lambda(step)

    def action_tolerance(self, step: int) -> None:
        self.app.change_tolerance(step)

    def action_sort(self) -> None:
        _, col = self.grid.focused()
        key = {"mark": "score", None: "score"}.get(col, col)
        descending = not self.view.descending if key == self.view.sort else key != "subject"
        self.view = replace(self.view, sort=key, descending=descending)
        self.redraw()

    def action_verdict_filter(self) -> None:
        i = VERDICT_FILTERS.index(self.view.verdict)
        self.view = replace(self.view, verdict=VERDICT_FILTERS[(i + 1) % len(VERDICT_FILTERS)])
        self.redraw()

    def action_axis_filter(self) -> None:
        axes = [None] + list(dict.fromkeys(a for _, a in self.table.gates))
        i = axes.index(self.view.axis) if self.view.axis in axes else 0
        self.view = replace(self.view, axis=axes[(i + 1) % len(axes)])
        self.redraw()

    def action_collapse(self) -> None:
        self.collapse_choice = not self.view.collapsed
        self.redraw()

    def action_pareto(self) -> None:
        from slayer_console.screens.pareto import ParetoScreen

        self.app.push_screen(ParetoScreen(self.table, self.best_id))

    def action_card(self) -> None:
        from slayer_console.screens.card import CardScreen

        row, _ = self.grid.focused()
        subject = row.subject_id if row is not None and row.verdict != "BASE" else None
        self.app.push_screen(CardScreen(self.table.experiment, subject))

    def action_export(self) -> None:
        from slayer_console.screens.card import export_card

        export_card(self, self.table.experiment, None)

    def action_merge(self) -> None:
        self.app.show_launch(next(k for k in self.app.job_kinds if k.startswith("merge")))
