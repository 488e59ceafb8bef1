"""A DataTable with vim-style movement (j/k/h/l, g/G) for every list in the console."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist


class VimTable(DataTable):
    DEFAULT_CSS = """
    VimTable { height: auto; max-height: 1fr; }
    """
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="table-down"),
        Binding("k", "cursor_up", "Up", show=False, id="table-up"),
        Binding("h", "cursor_left", "Left", show=False, id="table-left"),
        Binding("l", "cursor_right", "Right", show=False, id="table-right"),
        Binding("g", "scroll_top", "Top", show=False, id="table-top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="table-bottom"),
    ]

    def current_key(self) -> str | None:
        """The key of the row under the cursor."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def move_to_key(self, key: str) -> bool:
        try:
            self.move_cursor(row=self.get_row_index(key))
        except RowDoesNotExist:
            return False
        return True

    def replace_rows(self, rows: list[tuple[str, list]]) -> None:
        """Swap in new rows (key, cells), keeping the cursor on the same key."""
        here = self.current_key()
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if here is None or not self.move_to_key(here):
            self.move_cursor(row=0)
