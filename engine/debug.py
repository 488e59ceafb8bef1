"""`debug.sleep`: a job that only ticks — progress and a metric per step. For checking boxes, follow,
cancel and ingest without loading any model."""

from __future__ import annotations

import time

from pydantic import Field

from engine.jobs import JobConfig, job_kind


class SleepConfig(JobConfig):
    steps: int = Field(10, ge=0, description="how many ticks")
    interval_s: float = Field(0.1, ge=0, description="seconds between ticks")
    fail_at: int = Field(0, ge=0, description="raise an error at this step (0: never)")


EXAMPLE = '''# debug.sleep: ticks `steps` times, one progress event and one metric per tick.
kind = "debug.sleep"
steps = 10          # how many ticks
interval_s = 0.1    # seconds between ticks
fail_at = 0         # make the job fail at this step (0: never)
'''


@job_kind("debug.sleep", SleepConfig, "tick with progress and a metric; for testing boxes and ingest", EXAMPLE,
          needs_ml=False)
def run_sleep(cfg: SleepConfig, ctx) -> None:
    for step in range(1, cfg.steps + 1):
        time.sleep(cfg.interval_s)
        if step == cfg.fail_at:
            raise RuntimeError(f"asked to fail at step {step}")
        ctx.metric("tick", step * 0.5, step=step)
        ctx.progress(step, cfg.steps, unit="steps")
