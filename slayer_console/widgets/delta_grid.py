"""The delta table: rows = subjects, columns = gates grouped by axis (or one column per axis, its worst
cell, when collapsed), each cell the delta in pp coloured by verdict; score and ★ / decision columns."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets.data_table import ColumnDoesNotExist, RowDoesNotExist

from slayer_console.widgets.render import VERDICT_STYLE, delta_text
from slayer_console.widgets.vim_table import VimTable

# worst first when one cell stands for a whole axis
SEVERITY = {"FAIL": 5, "WARN": 4, "MISMATCH": 3, "PASS": 2, "NA": 1, "BASE": 0}
AXIS_LABEL = {"pl_nlu": "PL NLU", "pl_style": "style", "pl_grammar": "gram", "en_knowledge": "EN",
              "reasoning": "reason", "math": "math", "code": "code", "multilingual": "multi",
              "instruction": "instr", "safety": "safety"}
SUBJECT_WIDTH = 18
GATE_WIDTH = 6  # "+12.3✗"
SHORT_PREFIXES = ("polish_", "pl_", "en_")  # dropped from gate names in column heads: psc, dyk, …


@dataclass(frozen=True)
class GridView:
    """How the table is cut: collapsed axes, one axis only, one verdict only, sort column and order."""

    collapsed: bool = False
    axis: str | None = None
    verdict: str | None = None
    sort: str = "score"
    descending: bool = True


def worst_cell(cells: list):
    cells = [c for c in cells if c is not None]
    if not cells:
        return None
    return max(cells, key=lambda c: (SEVERITY.get(c.verdict, 0), -(c.gain_pp or 0.0)))


def short_gate(gate: str) -> str:
    for prefix in SHORT_PREFIXES:
        if gate.startswith(prefix) and len(gate) > len(prefix):
            gate = gate[len(prefix):]
            break
    return gate[:GATE_WIDTH]


def needed_width(table) -> int:
    """Columns an expanded table needs (to decide when to collapse axes)."""
    return SUBJECT_WIDTH + 2 + 7 + 4 + (GATE_WIDTH + 2) * len(table.gates)


class DeltaGrid(VimTable):
    """A DataTable bound to a store.deltas.DeltaTable; `show` redraws it for a table and a GridView."""

    DEFAULT_CSS = """
    DeltaGrid { height: 1fr; }
    """
    def __init__(self, **kwargs):
        super().__init__(cursor_type="cell", zebra_stripes=False, header_height=2, **kwargs)
        self.fixed_columns = 3
        self.table = None
        self.view = GridView()
        self.best_id: str | None = None
        self.order: list = []  # DeltaRows in display order

    # -- what is shown ---------------------------------------------------------------------------
    def columns_for(self, table, view: GridView) -> list[tuple[str, str, Text]]:
        """(column key, axis, two-line label) after the subject column."""
        cols, seen = [], set()
        for gate, axis in table.gates:
            if view.axis and axis != view.axis:
                continue
            if view.collapsed:
                if axis not in seen:
                    cols.append((f"a:{axis}", axis, Text(f"{AXIS_LABEL.get(axis, axis)}\nworst", style="bold")))
            else:
                top = AXIS_LABEL.get(axis, axis) if axis not in seen else ""
                cols.append((f"g:{gate}", axis, Text(f"{top}\n{short_gate(gate)}", style="bold")))
            seen.add(axis)
        return cols

    def sorted_rows(self, table, view: GridView) -> list:
        rows = [r for r in table.rows if view.verdict is None or r.verdict == view.verdict or r.verdict == "BASE"]
        base = [r for r in rows if r.verdict == "BASE"]
        rest = [r for r in rows if r.verdict != "BASE"]
        key = view.sort
        if key == "subject":
            rest.sort(key=lambda r: r.name, reverse=view.descending)
        elif key == "score":
            scored = sorted((r for r in rest if r.score is not None),
                            key=lambda r: (r.verdict != "FAIL", r.score), reverse=True)
            if not view.descending:
                scored.reverse()
            rest = scored + [r for r in rest if r.score is None]
        else:
            def gain(r):
                c = self.cell_of(r, key)
                return c.gain_pp if c is not None and c.gain_pp is not None else None
            have = sorted((r for r in rest if gain(r) is not None), key=gain, reverse=view.descending)
            rest = have + [r for r in rest if gain(r) is None]
        return base + rest

    def cell_of(self, row, column_key: str):
        if column_key.startswith("g:"):
            return row.cells.get(column_key[2:])
        if column_key.startswith("a:"):
            axis = column_key[2:]
            return worst_cell([c for c in row.cells.values() if c.axis == axis])
        return None

    def show(self, table, view: GridView, best_id: str | None) -> None:
        """Redraw for `table` under `view`, keeping the cursor on the same subject and column."""
        here = self.focused_keys()
        self.table, self.view, self.best_id = table, view, best_id
        self.order = self.sorted_rows(table, view)
        columns = self.columns_for(table, view)
        self.clear(columns=True)
        # subject, score and ★ stay put while the gate columns scroll sideways
        self.add_column(Text("\nsubject", style="bold"), key="subject", width=SUBJECT_WIDTH)
        self.add_column(Text("\nscore", style="bold"), key="score", width=5)
        self.add_column(Text("\n★", style="bold"), key="mark", width=2)
        for key, _, label in columns:
            self.add_column(label, key=key, width=GATE_WIDTH)
        keys = [k for k, _, _ in columns]
        for row in self.order:
            cells = [self.subject_text(row), self.score_text(row), self.mark_text(row)]
            cells += [delta_text(self.cell_of(row, k)) for k in keys]
            self.add_row(*cells, key=row.subject_id)
        self.restore(here)

    def subject_text(self, row) -> Text:
        tag = {"base": " (base)", "reference": " (ref)"}.get(row.kind, "")
        name = row.name if len(row.name) + len(tag) <= SUBJECT_WIDTH else row.name[:SUBJECT_WIDTH - len(tag) - 1] + "…"
        return Text(name + tag, style="bold" if row.subject_id == self.best_id else "")

    @staticmethod
    def score_text(row) -> Text:
        if row.score is None:
            return Text("")
        return Text(f"{row.score:.1f}", style=VERDICT_STYLE["FAIL"] if row.verdict == "FAIL" else "")

    def mark_text(self, row) -> Text:
        text = Text("★" if row.subject_id == self.best_id else " ", style="bold yellow")
        if row.decision == "accept":
            text.append("✓", style="bold green")
        elif row.decision == "reject":
            text.append("⊘", style="bold red")
        return text

    # -- cursor -----------------------------------------------------------------------------------
    def focused_keys(self) -> tuple[str | None, str | None]:
        if not self.row_count:
            return None, None
        cell = self.coordinate_to_cell_key(self.cursor_coordinate)
        return cell.row_key.value, cell.column_key.value

    def focused(self):
        """(DeltaRow, column key) under the cursor, or (None, None)."""
        row_key, col_key = self.focused_keys()
        if row_key is None or self.table is None:
            return None, None
        return next((r for r in self.order if r.subject_id == row_key), None), col_key

    def restore(self, here: tuple[str | None, str | None]) -> None:
        row_key, col_key = here
        try:
            row = self.get_row_index(row_key) if row_key else 0
        except RowDoesNotExist:
            row = 0
        try:
            col = self.get_column_index(col_key) if col_key else 0
        except ColumnDoesNotExist:
            col = 0
        if self.row_count:
            self.cursor_coordinate = Coordinate(row, col)

