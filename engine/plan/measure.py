"""Measure what the planner estimates: the peak resident memory a job adds to a process (CPU boxes).

`measure_jobs(specs, run_dirs)` runs each job in a fresh child process of its own (all at once): the child imports
the training stack first, takes its resident set size as the baseline, runs the job and reports the peak
(VmHWM) above that baseline. One process per job: what a job leaves behind would hide part of the next one's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) * 1024


def measure_jobs(specs: list[dict], run_dirs: list, timeout: float = 900) -> list[dict]:
    """One {"status", "baseline", "peak", "added"} (bytes) per job; each spec is the job as a TOML-shaped dict."""
    root = Path(__file__).resolve().parents[2]
    # glibc keeps freed heap pages resident and raises its mmap threshold as it goes; a fixed threshold makes
    # large tensors mmap'd and returned on free, so the resident set follows live memory
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
           "MALLOC_MMAP_THRESHOLD_": "65536"}
    procs = [subprocess.Popen([sys.executable, "-m", "engine.plan.measure", json.dumps(spec), str(run_dir)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root)
             for spec, run_dir in zip(specs, run_dirs)]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"measuring failed: {stderr.strip()[-500:]}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def _child(spec_json: str, run_dir: str) -> None:
    import datasets  # noqa: F401  the training stack, imported before the baseline
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401

    from engine.jobs import parse_spec
    from engine.runner import run_job

    baseline = _status_bytes("VmRSS:")
    status = run_job(parse_spec(json.loads(spec_json), "measured job"), run_dir)
    peak = _status_bytes("VmHWM:")  # not ru_maxrss, which Linux carries over from the parent across exec
    print(json.dumps({"status": status, "baseline": baseline, "peak": peak, "added": peak - baseline}))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
