"""`slayer jobs example KIND` prints a spec that runs as printed, on any machine: the embedded tiny model (tiny:qwen3)
and data shipped in assets/ (assets:...), resolved where the job runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.jobs import load_spec
from engine.runner import run_job

ROOT = Path(__file__).resolve().parents[1]
RUNS_AS_PRINTED = ["model.tiny", "train.sft", "train.cpt", "train.dpo", "gate", "export.gguf"]


def example(kind: str) -> str:
    out = subprocess.run([sys.executable, "-m", "slayer_console", "jobs", "example", kind], capture_output=True,
                         text=True, cwd=ROOT, timeout=60, check=True)
    return out.stdout


@pytest.mark.parametrize("kind", RUNS_AS_PRINTED)
def test_the_example_runs_as_printed(tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)  # nothing relative to the repository
    spec = tmp_path / "job.toml"
    spec.write_text(example(kind), encoding="utf-8")
    run_dir = tmp_path / "run"
    status = run_job(load_spec(spec), run_dir)
    events = (run_dir / "events.jsonl").read_text()
    assert status == "succeeded", events.splitlines()[-1]
    assert "tiny:" in (run_dir / "job.toml").read_text() or kind == "model.tiny"  # job.toml keeps the reference
