"""Spread jobs (the gate jobs of N checkpoints, say) over several boxes at once: one worker per box takes
the next job when its last one ends; a box that cannot be reached leaves its jobs to the others. Jobs may keep
arriving while the workers run (`FanOut.submit`, then `close`): checkpoint gating feeds it as training saves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

from engine.jobs import JobSpec
from remotes.boxes import BoxError
from remotes.follow import follow_run
from remotes.launch import launch_remote

# prepare(box, spec) → the spec to launch there (e.g. after uploading its inputs to that box); BoxError: not there
Prepare = Callable[[str, JobSpec], Awaitable[JobSpec]]


@dataclass
class FanOutResult:
    index: int  # position in the order of submission
    box: str | None
    run_id: str | None
    status: str  # a run status, "lost", "unfollowed" or "not launched"
    error: str | None = None


class FanOut:
    """`submit` jobs (any time), `close` when no more will come; `run` works until every job has ended."""

    def __init__(self, home, store, boxes: list[str], *, prepare: Prepare | None = None,
                 on_state: Callable[[str], None] | None = None, poll_s: float = 0.2):
        self.home, self.store, self.boxes = home, store, list(dict.fromkeys(boxes))
        self.prepare, self.on_state, self.poll_s = prepare, on_state, poll_s
        self.queue: asyncio.Queue = asyncio.Queue()
        self.results: list[FanOutResult | None] = []
        self.closed = False

    def submit(self, spec: JobSpec, run_id: str | None = None) -> int:
        self.results.append(None)
        self.queue.put_nowait((len(self.results) - 1, spec, run_id))
        return len(self.results) - 1

    def close(self) -> None:
        self.closed = True

    def _say(self, line: str) -> None:
        if self.on_state:
            self.on_state(line)

    def _open(self) -> bool:
        """Jobs may still come or are not ended (a free worker waits while a failing box may hand some back)."""
        return not self.closed or any(r is None for r in self.results)

    async def _worker(self, box: str, alive: list[str]) -> None:
        while self._open():
            try:
                index, spec, run_id = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.sleep(self.poll_s)
                continue
            try:
                ready = await self.prepare(box, spec) if self.prepare else spec
                launched = await launch_remote(self.home, self.store, box, ready, run_id=run_id)
            except BoxError as e:
                self.queue.put_nowait((index, spec, run_id))
                self._say(f"{e}; box {box} takes no more jobs")
                alive.remove(box)
                return
            self._say(f"box {box}: started {launched.run_id}")
            try:
                status = await follow_run(self.home, self.store, launched.run_id, poll_s=self.poll_s,
                                          on_state=self.on_state)
                self.results[index] = FanOutResult(index, box, launched.run_id, status)
            except BoxError as e:  # the job may still be running there: `slayer runs attach` picks it up
                self.results[index] = FanOutResult(index, box, launched.run_id, "unfollowed", str(e))
                alive.remove(box)
                return

    async def _no_box_left(self, alive: list[str]) -> None:
        """When every box has dropped out, what is queued (and what comes later) is not launched."""
        while self._open():
            if not alive:
                while not self.queue.empty():
                    index, _, _ = self.queue.get_nowait()
                    self.results[index] = FanOutResult(index, None, None, "not launched", "no box could take it")
            await asyncio.sleep(self.poll_s)

    async def run(self) -> list[FanOutResult]:
        alive = list(self.boxes)
        await asyncio.gather(*(self._worker(b, alive) for b in self.boxes), self._no_box_left(alive))
        return list(self.results)


async def fan_out(home, store, specs: list[JobSpec], boxes: list[str], *, prepare: Prepare | None = None,
                  on_state: Callable[[str], None] | None = None, poll_s: float = 0.2) -> list[FanOutResult]:
    """Run every spec on one of `boxes`, at most one job per box at a time; results in spec order."""
    pool = FanOut(home, store, boxes, prepare=prepare, on_state=on_state, poll_s=poll_s)
    for spec in specs:
        pool.submit(spec)
    pool.close()
    return await pool.run()
