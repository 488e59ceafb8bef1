"""Follow a job on a box: read its `events.jsonl` over SFTP from the store's byte offset and ingest it
(the same ingest as local runs). A dropped connection is retried with backoff; the job never notices."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Callable

import asyncssh

from engine.vocab import LOST, TERMINAL
from remotes.boxes import Box, BoxError, BoxUnreachable, get_box
from remotes.ssh import HostKeyConfirm, connect_box, run_command, shell_path
from store.ingest import IngestStats, cursor_of, ingest_bytes

CHUNK = 2 << 20  # bytes per read; a catch-up of 100k events (~12 MB) is a pipeline of a few of these
BACKOFF_S = (0.5, 1, 2, 4, 8, 10)

# A shell test "is anything of the job's session still running" (zombies do not count).
ALIVE_SH = ("alive() {{ if command -v ps >/dev/null 2>&1; then ps -o stat= -s \"$1\" 2>/dev/null | grep -qv '^Z'; "
            "else kill -0 -\"$1\" 2>/dev/null; fi; }}; pid=$(cat {run_dir}/pid 2>/dev/null || echo {pid}); ")


def run_row(store, run_id: str):
    from store.queries import get_run

    return get_run(store, run_id)


async def job_pid_alive(conn, box: Box, run_dir: str, pid: int | None) -> bool:
    # An unknown pid (0) counts as alive: only a process seen gone makes a run "lost".
    script = ALIVE_SH.format(run_dir=shell_path(run_dir), pid=pid or 0) + \
        'if [ "$pid" -gt 0 ]; then alive "$pid" && echo yes || echo no; else echo yes; fi'
    return (await run_command(conn, box, script, what="liveness check")).strip() == "yes"


async def _read_new(f, offset: int) -> bytes:
    """Bytes from `offset` to EOF (in CHUNK steps, growing if one line is longer than a chunk)."""
    size = CHUNK
    while True:
        data = await f.read(size, offset)
        if len(data) < size or b"\n" in data:
            return data
        size *= 2


class _Tail:
    """One connection's worth of following; returns the final status or raises to reconnect."""

    def __init__(self, store, run, box: Box, on_ingest, poll_s: float, liveness_s: float):
        self.store, self.run, self.box = store, run, box
        self.on_ingest, self.poll_s, self.liveness_s = on_ingest, poll_s, liveness_s
        self.path = f"{run.run_dir}/events.jsonl"
        self.status = run.status

    async def _ingest(self, data: bytes, offset: int) -> IngestStats:
        stats = await asyncio.to_thread(ingest_bytes, self.store, self.run.id, data, offset,
                                        f"{self.box.name}:{self.path}", box=self.box.name, run_dir=self.run.run_dir)
        self.status = stats.status
        if self.on_ingest and stats.events:
            self.on_ingest(stats)
        return stats

    async def _pass(self, f) -> bool:
        """Ingest what is new; True if anything was. While one chunk is ingested the next is already being
        read, so a catch-up costs about the ingest time alone."""
        offset, _ = cursor_of(self.store, self.run.id)
        data, progressed = await _read_new(f, offset), False
        while data:
            end = data.rfind(b"\n") + 1
            if end == 0:
                break  # only a half-written line so far
            ahead = asyncio.ensure_future(_read_new(f, offset + end)) if len(data) >= CHUNK else None
            try:
                progressed |= (await self._ingest(data[:end], offset)).events > 0
            except BaseException:
                if ahead:
                    ahead.cancel()
                raise
            offset += end
            data = await ahead if ahead else b""
        return progressed

    async def follow(self, conn) -> str:
        async with conn.start_sftp_client() as sftp:
            f, quiet_since = None, time.monotonic()
            try:
                while True:
                    if f is None:
                        try:
                            f = await sftp.open(self.path, "rb")
                        except asyncssh.SFTPNoSuchFile:
                            pass  # the job has not started writing yet
                    if f is not None and await self._pass(f):
                        quiet_since = time.monotonic()
                        continue
                    if self.status in TERMINAL:
                        return self.status
                    if time.monotonic() - quiet_since > self.liveness_s:
                        if not await job_pid_alive(conn, self.box, self.run.run_dir, self.run.pid):
                            if f is not None:
                                await self._pass(f)  # whatever it wrote before it died
                            return self.status if self.status in TERMINAL else LOST
                        quiet_since = time.monotonic()
                    await asyncio.sleep(self.poll_s)
            finally:
                if f is not None:
                    with contextlib.suppress(OSError, asyncssh.Error):
                        await f.close()


async def follow_run(home, store, run_id: str, *, on_ingest: Callable[[IngestStats], None] | None = None,
                     on_state: Callable[[str], None] | None = None, poll_s: float = 0.2, liveness_s: float = 5.0,
                     give_up_s: float | None = None, confirm: HostKeyConfirm | None = None) -> str:
    """Ingest a remote run until it ends; returns its final status ("lost" if the process vanished
    without one). Reconnects after any drop; gives up after `give_up_s` of failed reconnects (None: never)."""
    box = get_box(home, run_row(store, run_id).box)
    attempt, down_since = 0, None
    while True:
        run = run_row(store, run_id)  # fresh status and pid after each reconnect
        try:
            async with connect_box(box, home, confirm=confirm) as conn:
                if down_since is not None and on_state:
                    on_state(f"box {box.name}: reconnected after {time.monotonic() - down_since:.1f} s")
                attempt, down_since = 0, None
                return await _Tail(store, run, box, on_ingest, poll_s, liveness_s).follow(conn)
        except asyncssh.SFTPPermissionDenied as e:
            raise BoxError(f"box {box.name}: cannot read {run.run_dir}/events.jsonl ({e.reason})") from None
        except (BoxUnreachable, OSError, asyncssh.Error) as e:
            now = time.monotonic()
            down_since = down_since if down_since is not None else now
            if give_up_s is not None and now - down_since > give_up_s:
                raise BoxUnreachable(f"box {box.name}: gave up following {run_id} after {give_up_s:g} s "
                                     f"without a connection ({e})") from None
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            attempt += 1
            if on_state:
                on_state(f"box {box.name}: connection lost ({e}); retrying in {wait:g} s")
            await asyncio.sleep(wait)
