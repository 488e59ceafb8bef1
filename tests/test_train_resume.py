"""kill -9 in the middle of train.sft, then `resume = true`: training continues from the last checkpoint and
the store registers every checkpoint once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from train_fixtures import ROOT, chat_file, of_type, read_events, spec_file, tiny_model

from engine.jobs import load_spec
from engine.runner import run_job


def test_kill_9_then_resume_continues_and_registers_each_checkpoint_once(tmp_path):
    from store import Store
    from store.ingest import ingest_run_dir
    from store.models import Subject
    from store.queries import count_rows

    run_dir = tmp_path / "run"
    spec = spec_file(tmp_path / "job.toml", "train.sft", name="sft-resume", experiment="exp-resume",
                     model=tiny_model(), data=str(chat_file(tmp_path / "chat.jsonl", n=32)), resume=True,
                     training={"max_steps": 8, "save_steps": 2, "batch_size": 2})
    proc = subprocess.Popen([sys.executable, "-m", "engine", "run", str(spec), "--run-dir", str(run_dir)], cwd=ROOT)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "events.jsonl").exists() and of_type(read_events(run_dir), "checkpoint"):
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    before = read_events(run_dir)
    assert not [e for e in before if e.get("status") == "succeeded"]
    last_saved = max(c["step"] for c in of_type(before, "checkpoint"))
    assert last_saved < 8

    store = Store.open(f"sqlite:///{tmp_path / 'slayer.db'}")
    ingest_run_dir(store, run_dir)  # the console ingested the killed run's events as they came

    assert run_job(load_spec(spec), run_dir) == "succeeded"
    events = read_events(run_dir)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    steps = [c["step"] for c in of_type(events, "checkpoint")]
    assert steps == sorted(set(steps)) and steps[-1] == 8
    resumed = [e["message"] for e in of_type(events, "log") if e["message"].startswith("resuming from")]
    from_step = int(resumed[0].rsplit("checkpoint-", 1)[1])
    assert from_step >= last_saved  # a checkpoint saved but not yet announced when killed counts too
    progress = [e["done"] for e in of_type(events[len(before):], "progress")]
    assert progress[0] == from_step + 1  # no step before the checkpoint is trained again

    ingest_run_dir(store, run_dir)
    ingest_run_dir(store, run_dir)
    assert count_rows(store, Subject) == len(steps)
