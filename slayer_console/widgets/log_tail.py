"""A log pane that follows a growing file (a run's log.txt): reads only the new bytes, in a worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.message import Message
from textual.widgets import Log

FIRST_READ = 64 << 10  # show the last 64 KiB of a long log, not all of it
CHUNK = 1 << 20


class LogTail(Log):
    DEFAULT_CSS = """
    LogTail { height: 12; border-top: solid $panel-lighten-2; }
    """

    @dataclass
    class Chunk(Message):
        path: Path
        end: int
        text: str

    def __init__(self, poll_s: float = 0.5, **kwargs):
        super().__init__(max_lines=5000, **kwargs)
        self.poll_s = poll_s
        self.log_path: Path | None = None
        self.header = ""
        self.read_offset = 0

    def on_mount(self) -> None:
        self.set_interval(self.poll_s, self.poll)

    def follow(self, path: Path | None, header: str = "") -> None:
        """Show `header`, then the tail of `path` (None: just the header) as it grows."""
        if (path, header) == (self.log_path, self.header):
            return
        self.clear()
        self.log_path, self.header, self.read_offset = path, header, -1  # -1: first read starts near the end
        if header:
            self.write_line(header)
        self.poll()

    def poll(self) -> None:
        if self.log_path is not None:
            self.read_new(self.log_path, self.read_offset)

    @work(thread=True, group="log-tail", exclusive=True, exit_on_error=False)
    def read_new(self, path: Path, offset: int) -> None:
        try:
            size = path.stat().st_size
        except OSError:
            return
        start = max(0, size - FIRST_READ) if offset < 0 else offset
        if size <= start:
            return
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(CHUNK)
        self.post_message(self.Chunk(path, start + len(data), data.decode(errors="replace")))

    @on(Chunk)
    def _chunk(self, event: Chunk) -> None:
        if event.path == self.log_path:
            self.write(event.text)
            self.read_offset = event.end
