"""Run one job into its run directory: job.toml, events.jsonl, outputs/, log.txt.

Status goes queued → running → succeeded | failed (with the error) | cancelled (SIGTERM/SIGINT).
"""

from __future__ import annotations

import os
import signal
import traceback
from pathlib import Path

from engine.errors import JobCancelled, SpecError
from engine.events import EventWriter, JobContext
from engine.extras import extra_of, install_hint
from engine.jobs import JobSpec
from engine.refs import resolve_refs


def _raise_cancelled(signum, frame):
    raise JobCancelled(signal.Signals(signum).name)


def run_job(spec: JobSpec, run_dir: str | os.PathLike, run_id: str | None = None) -> str:
    """Run `spec` in this process, writing RUN_DIR. Returns the final status."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "outputs").mkdir(exist_ok=True)
    run_id = run_id or run_dir.name
    tmp = run_dir / "job.toml.tmp"
    tmp.write_text(spec.to_toml(), encoding="utf-8")
    os.replace(tmp, run_dir / "job.toml")
    writer = EventWriter(run_dir / "events.jsonl", run_id)
    ctx = JobContext(run_dir, writer)
    writer.emit("status", status="queued", kind=spec.kind.name, name=spec.name, experiment=spec.experiment)
    old = {s: signal.signal(s, _raise_cancelled) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        writer.emit("status", status="running", pid=os.getpid())
        spec.kind.run(resolve_refs(spec.config), ctx)
        # Signals arriving after the job body finished no longer interrupt: the result is written.
        for s in old:
            signal.signal(s, signal.SIG_IGN)
        writer.emit("status", status="succeeded")
        return "succeeded"
    except JobCancelled as e:
        writer.emit("status", status="cancelled", error=f"cancelled by {e}")
        return "cancelled"
    except SpecError as e:  # bad input found while running (a missing file on the box): exit code 2, not 1
        writer.emit("status", status="failed", error=str(e), bad_input=True)
        return "failed"
    except Exception as e:  # the job failed: record why, keep the traceback in log.txt
        traceback.print_exc()
        error = f"{e.__class__.__name__}: {e}"
        extra = extra_of(e.name) if isinstance(e, ModuleNotFoundError) else None
        if extra:  # a box or a job that lacks an optional extra: say which to install
            error += f" ({install_hint(extra)})"
        writer.emit("status", status="failed", error=error)
        return "failed"
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        writer.close()
