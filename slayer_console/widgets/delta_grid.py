"""The delta table: rows = subjects, columns = gates grouped by axis (or one column per axis, its worst
cell, when collapsed), each cell the delta in pp coloured by verdict; score and ★ / decision columns.

A line-API widget: it draws only the lines on screen, so 300 subjects × 40 gates redraw as fast as
6 × 9 (a DataTable measures and renders every cell it holds). The subject, score and ★ columns stay
put while the gate columns scroll sideways; the two header lines stay put while rows scroll.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.vocab import DECISION_STYLE, DECISIONS, VERDICTS, axis_label
from slayer_console.widgets.render import delta_label
from slayer_console.widgets.shorten import distinct, middle

SUBJECT_WIDTH = 18
GATE_WIDTH = 6  # "+12.3✗"
PAD = 1  # blank cells on each side of a column
SHORT_PREFIXES = ("polish_", "pl_", "en_")  # dropped from gate names in column heads: psc, dyk, …
HEADER = 2  # lines: axis over gate
FIXED = ("subject", "score", "mark")
TAGS = {"base": " (base)", "reference": " (ref)"}  # after the subject's name


@dataclass(frozen=True)
class GridView:
    """How the table is cut: collapsed axes, one axis only, one verdict only, sort column and order."""

    collapsed: bool = False
    axis: str | None = None
    verdict: str | None = None
    sort: str = "score"
    descending: bool = True


@dataclass(frozen=True)
class Column:
    key: str  # "subject" | "score" | "mark" | "g:GATE" | "a:AXIS"
    top: str  # header line 1 (the axis over its first gate)
    bottom: str  # header line 2
    width: int


def worst_cell(cells: list):
    cells = [c for c in cells if c is not None]
    if not cells:
        return None
    return max(cells, key=lambda c: (VERDICTS[c.verdict].rank, -(c.gain_pp or 0.0)))


def short_gate(gate: str) -> str:
    for prefix in SHORT_PREFIXES:
        if gate.startswith(prefix) and len(gate) > len(prefix):
            return gate[len(prefix):]
    return gate


def needed_width(gates: int) -> int:
    """Terminal columns an expanded table with `gates` gate columns needs (to decide when to collapse)."""
    return SUBJECT_WIDTH + 5 + 2 + (2 * PAD) * 3 + (GATE_WIDTH + 2 * PAD) * gates


def fit(text: str, width: int) -> str:
    return middle(text, width).ljust(width)


class DeltaGrid(ScrollView, can_focus=True):
    """Bound to a store.deltas.DeltaTable; `show(table, view, best_id)` redraws it."""

    DEFAULT_CSS = """
    DeltaGrid { height: 1fr; }
    DeltaGrid > .delta-grid--header { text-style: bold; }
    DeltaGrid > .delta-grid--cursor { background: $accent; color: $text; text-style: bold; }
    DeltaGrid > .delta-grid--cursor-row { background: $boost; }
    """
    COMPONENT_CLASSES = {"delta-grid--header", "delta-grid--cursor", "delta-grid--cursor-row"}
    BINDINGS = [
        Binding("up,k", "move(-1, 0)", "Up", show=False, id="delta-up"),
        Binding("down,j", "move(1, 0)", "Down", show=False, id="delta-down"),
        Binding("left,h", "move(0, -1)", "Left", show=False, id="delta-left"),
        Binding("right,l", "move(0, 1)", "Right", show=False, id="delta-right"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="delta-page-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="delta-page-down"),
        Binding("home,g", "edge(-1)", "Top", show=False, id="delta-top"),
        Binding("end,G", "edge(1)", "Bottom", show=False, id="delta-bottom"),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=True, repaint=False)
    cursor_col: reactive[int] = reactive(0, always_update=True, repaint=False)

    @dataclass
    class CursorMoved(Message):
        """The cursor is on another cell (the screen updates its detail line)."""

        grid: "DeltaGrid"

        @property
        def control(self) -> "DeltaGrid":
            return self.grid

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.table = None
        self.view = GridView()
        self.best_id: str | None = None
        self.order: list = []  # DeltaRows in display order
        self.columns: list[Column] = []
        self.short_names: dict[str, str] = {}
        self._styles: dict[str, Style] = {}
        self._lines: LRUCache[tuple, Strip] = LRUCache(512)  # rows as drawn; cleared by show()

    # -- what is shown ---------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self.order)

    @property
    def column_keys(self) -> list[str]:
        return [c.key for c in self.columns]

    def columns_for(self, table, view: GridView) -> list[Column]:
        cols = [Column("subject", "", "subject", SUBJECT_WIDTH), Column("score", "", "score", 5),
                Column("mark", "", "★", 2)]
        seen: set[str] = set()
        for gate, axis in table.gates:
            if view.axis and axis != view.axis:
                continue
            label = axis_label(axis)
            if view.collapsed:
                if axis not in seen:
                    cols.append(Column(f"a:{axis}", label, "worst", GATE_WIDTH))
            else:
                cols.append(Column(f"g:{gate}", "" if axis in seen else label, short_gate(gate), GATE_WIDTH))
            seen.add(axis)
        # gate and axis heads cut from the middle, never two alike (polemo2_in / polemo2_out)
        tops = distinct([c.top for c in cols[len(FIXED):] if c.top], GATE_WIDTH)
        bottoms = distinct([c.bottom for c in cols[len(FIXED):]], GATE_WIDTH)
        return cols[:len(FIXED)] + [Column(c.key, tops.get(c.top, c.top), bottoms[c.bottom], c.width)
                                     for c in cols[len(FIXED):]]

    def sorted_rows(self, table, view: GridView) -> list:
        rows = [r for r in table.rows if view.verdict is None or r.verdict in (view.verdict, "BASE")]
        base = [r for r in rows if r.verdict == "BASE"]
        rest = [r for r in rows if r.verdict != "BASE"]
        if view.sort == "subject":
            rest.sort(key=lambda r: r.name, reverse=view.descending)
        elif view.sort == "score":
            scored = sorted((r for r in rest if r.score is not None),
                            key=lambda r: (r.verdict != "FAIL", r.score), reverse=True)
            if not view.descending:
                scored.reverse()
            rest = scored + [r for r in rest if r.score is None]
        else:
            def gain(r):
                c = self.cell_of(r, view.sort)
                return c.gain_pp if c is not None and c.gain_pp is not None else None
            have = sorted((r for r in rest if gain(r) is not None), key=gain, reverse=view.descending)
            rest = have + [r for r in rest if gain(r) is None]
        return base + rest

    def cell_of(self, row, column_key: str):
        if column_key.startswith("g:"):
            return row.cells.get(column_key[2:])
        if column_key.startswith("a:"):
            axis = column_key[2:]  # the axis's pooled verdict; the base row has none: its own values
            return row.axes.get(axis) or worst_cell([c for c in row.cells.values() if c.axis == axis])
        return None

    def show(self, table, view: GridView, best_id: str | None) -> None:
        """Redraw for `table` under `view`, keeping the cursor on the same subject and column."""
        row_key, col_key = self.focused_keys()
        self.table, self.view, self.best_id = table, view, best_id
        self.order = self.sorted_rows(table, view)
        self.columns = self.columns_for(table, view)
        self.short_names = self.subject_labels(self.order)
        keys = self.column_keys
        width = sum(c.width + 2 * PAD for c in self.columns)
        self.virtual_size = Size(width, HEADER + len(self.order))
        rows = [r.subject_id for r in self.order]
        self.cursor_row = rows.index(row_key) if row_key in rows else 0
        self.cursor_col = keys.index(col_key) if col_key in keys else 0
        self._lines.clear()
        self.refresh()

    @staticmethod
    def subject_labels(rows) -> dict[str, str]:
        """subject id → its name cut to the subject column from the middle, never two alike (the detail line
        shows the full name), with its (base) / (ref) tag."""
        tags = {r.subject_id: TAGS.get(r.kind, "") for r in rows}
        out = {}
        for tag in set(tags.values()):
            tagged = [r for r in rows if tags[r.subject_id] == tag]
            cut = distinct([r.name for r in tagged], SUBJECT_WIDTH - len(tag))
            out.update({r.subject_id: cut[r.name] + tag for r in tagged})
        return out

    def clear(self) -> None:
        self.table, self.order, self.columns = None, [], []
        self._lines.clear()
        self.virtual_size = Size(0, 0)
        self.refresh()

    def label(self, row, key: str) -> tuple[str, str]:
        """(text, style name) of one cell."""
        if key == "subject":
            return self.short_names[row.subject_id], "bold" if row.subject_id == self.best_id else ""
        if key == "score":
            if row.score is None:
                return "", ""
            return f"{row.score:.1f}", VERDICTS["FAIL"].style if row.verdict == "FAIL" else ""
        if key == "mark":
            star = "★" if row.subject_id == self.best_id else " "
            style = "bold yellow" if star != " " else DECISION_STYLE.get(row.decision, "")
            return star + DECISIONS.get(row.decision, ""), style
        return delta_label(self.cell_of(row, key))

    def cell_label(self, subject_id: str, key: str) -> str:
        """The text of one cell, as drawn."""
        row = next(r for r in self.order if r.subject_id == subject_id)
        return self.label(row, key)[0]

    # -- drawing ----------------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        self._lines.clear()  # a theme change: the cached lines carry the old colours
        super().notify_style_update()

    def style(self, name: str) -> Style:
        if name not in self._styles:
            self._styles[name] = Style.parse(name) if name else Style()
        return self._styles[name]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if not self.columns:
            return Strip.blank(width)
        base = self.rich_style
        if y < HEADER:
            header = self.get_component_rich_style("delta-grid--header")
            cells = [(c.top if y == 0 else c.bottom, header) for c in self.columns]
            return self._line(cells, width, base)
        index = self.scroll_offset.y + y - HEADER
        if index >= len(self.order):
            return Strip.blank(width, base)
        on_row = index == self.cursor_row
        key = (index, self.cursor_col if on_row else -1, self.scroll_offset.x, width)
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = self._row_line(index, on_row, width, base)
        return line

    def _row_line(self, index: int, on_row: bool, width: int, base: Style) -> Strip:
        row = self.order[index]
        row_style = base + self.get_component_rich_style("delta-grid--cursor-row") if on_row else base
        cursor = self.get_component_rich_style("delta-grid--cursor")
        cells = []
        for i, col in enumerate(self.columns):
            text, style_name = self.label(row, col.key)
            style = row_style + self.style(style_name)
            if on_row and i == self.cursor_col:
                style += cursor
            cells.append((text, style))
        return self._line(cells, width, row_style)

    def _line(self, cells: list[tuple[str, Style]], width: int, fill: Style) -> Strip:
        """The fixed columns, then the scrolled part of the others, cut to the widget's width."""
        def segments(part):
            segs = []
            for (text, style), col in part:
                pad = " " * PAD
                segs.append(Segment(pad + fit(text, col.width) + pad, style))
            return segs

        pairs = list(zip(cells, self.columns))
        fixed = Strip(segments(pairs[:len(FIXED)]))
        moving = Strip(segments(pairs[len(FIXED):]))
        x = self.scroll_offset.x
        visible = max(0, width - fixed.cell_length)
        line = Strip.join([fixed, moving.crop(x, x + visible)])
        return line.extend_cell_length(width, fill).crop(0, width)

    # -- cursor -----------------------------------------------------------------------------------
    def focused_keys(self) -> tuple[str | None, str | None]:
        if not self.order or not self.columns:
            return None, None
        return self.order[self.cursor_row].subject_id, self.columns[self.cursor_col].key

    def focused(self):
        """(DeltaRow, column key) under the cursor, or (None, None)."""
        if not self.order or not self.columns:
            return None, None
        return self.order[self.cursor_row], self.columns[self.cursor_col].key

    def move_to_key(self, subject_id: str) -> bool:
        for i, row in enumerate(self.order):
            if row.subject_id == subject_id:
                self.cursor_row = i
                return True
        return False

    def validate_cursor_row(self, value: int) -> int:
        return max(0, min(value, len(self.order) - 1))

    def validate_cursor_col(self, value: int) -> int:
        return max(0, min(value, len(self.columns) - 1))

    def watch_cursor_row(self) -> None:
        self._cursor_changed()

    def watch_cursor_col(self) -> None:
        self._cursor_changed()

    def _cursor_changed(self) -> None:
        self._scroll_to_cursor()
        self.refresh()
        self.post_message(self.CursorMoved(self))

    def _scroll_to_cursor(self) -> None:
        if not self.order or not self.size.height:
            return
        visible_rows = max(1, self.size.height - HEADER)
        y = self.scroll_offset.y
        if self.cursor_row < y:
            y = self.cursor_row
        elif self.cursor_row >= y + visible_rows:
            y = self.cursor_row - visible_rows + 1
        x = self.scroll_offset.x
        if self.cursor_col >= len(FIXED):
            widths = [c.width + 2 * PAD for c in self.columns]
            start = sum(widths[len(FIXED):self.cursor_col])
            visible = self.size.width - sum(widths[:len(FIXED)])
            if start < x:
                x = start
            elif start + widths[self.cursor_col] > x + visible:
                x = start + widths[self.cursor_col] - visible
        self.scroll_to(x, y, animate=False, immediate=True)

    def on_resize(self) -> None:
        self._scroll_to_cursor()

    def action_move(self, rows: int, cols: int) -> None:
        if rows:
            self.cursor_row += rows
        if cols:
            self.cursor_col += cols

    def action_page(self, direction: int) -> None:
        self.cursor_row += direction * max(1, self.size.height - HEADER - 1)

    def action_edge(self, direction: int) -> None:
        self.cursor_row = 0 if direction < 0 else len(self.order) - 1

    def on_click(self, event: events.Click) -> None:
        if event.y < HEADER or not self.columns:
            return
        self.cursor_row = self.scroll_offset.y + event.y - HEADER
        x, edge = event.x, 0
        widths = [c.width + 2 * PAD for c in self.columns]
        fixed = sum(widths[:len(FIXED)])
        if x >= fixed:
            x += self.scroll_offset.x
        for i, w in enumerate(widths):
            edge += w
            if x < edge:
                self.cursor_col = i
                return
