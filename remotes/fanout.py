"""Spread jobs (the gate jobs of N checkpoints, say) over several boxes at once: one worker per box takes
the next job when its last one ends; a box that cannot be reached leaves its jobs to the others."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable

from engine.jobs import JobSpec
from remotes.boxes import BoxError
from remotes.follow import follow_run
from remotes.launch import launch_remote


@dataclass
class FanOutResult:
    index: int  # position in the list of specs
    box: str | None
    run_id: str | None
    status: str  # a run status, "lost", "unfollowed" or "not launched"
    error: str | None = None


async def fan_out(home, store, specs: list[JobSpec], boxes: list[str], *,
                  on_state: Callable[[str], None] | None = None, poll_s: float = 0.2) -> list[FanOutResult]:
    """Run every spec on one of `boxes`, at most one job per box at a time; results in spec order."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in enumerate(specs):
        queue.put_nowait(item)
    results: list[FanOutResult | None] = [None] * len(specs)
    unfinished = [len(specs)]  # jobs not yet ended; a free worker waits while a failing box may hand some back

    async def worker(box: str) -> None:
        while unfinished[0] > 0:
            try:
                index, spec = queue.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.sleep(poll_s)
                continue
            try:
                launched = await launch_remote(home, store, box, spec)
            except BoxError as e:
                queue.put_nowait((index, spec))
                if on_state:
                    on_state(f"{e}; box {box} takes no more jobs")
                return
            if on_state:
                on_state(f"box {box}: started {launched.run_id}")
            try:
                status = await follow_run(home, store, launched.run_id, poll_s=poll_s, on_state=on_state)
                results[index] = FanOutResult(index, box, launched.run_id, status)
            except BoxError as e:  # the job may still be running there: `slayer runs attach` picks it up
                results[index] = FanOutResult(index, box, launched.run_id, "unfollowed", str(e))
                return
            finally:
                unfinished[0] -= 1

    await asyncio.gather(*(worker(b) for b in dict.fromkeys(boxes)))
    while not queue.empty():
        index, _ = queue.get_nowait()
        results[index] = FanOutResult(index, None, None, "not launched", "no box could take it")
    return results
