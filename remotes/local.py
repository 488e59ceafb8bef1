"""The local box: start `python -m engine run` as a detached subprocess, find it again, cancel it."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.jobs import JobSpec


@dataclass
class LocalRun:
    run_id: str
    run_dir: Path
    pid: int


def new_run_id(kind: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{kind.replace('.', '-')}-{secrets.token_hex(3)}"


def launch_local(spec_path: str | Path, spec: JobSpec, runs_dir: Path, run_id: str | None = None) -> LocalRun:
    """Start the job in its own session (it outlives this process and ignores our Ctrl-C)."""
    from engine.extras import require_for_job

    require_for_job(spec)  # say so now, not as a failed run a second later
    run_id = run_id or new_run_id(spec.kind.name)
    run_dir = Path(runs_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    shutil.copyfile(spec_path, run_dir / "spec.toml")
    log = open(run_dir / "log.txt", "ab")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", str(run_dir / "spec.toml"), "--run-dir", str(run_dir),
         "--run-id", run_id, "--pid-file", str(run_dir / "pid")],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env)
    log.close()
    return LocalRun(run_id, run_dir, proc.pid)


def pid_alive(pid: int) -> bool:
    """True while the process runs (a finished but unreaped child, a zombie, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return "zombie" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return ""


def read_pid(run_dir: Path) -> int | None:
    try:
        return int((Path(run_dir) / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def cancel_local(run_dir: Path, sig: int = signal.SIGTERM) -> bool:
    """Signal the job's process group; the job records `cancelled` itself. False if it is not running."""
    pid = read_pid(run_dir)
    if pid is None or not pid_alive(pid):
        return False
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True
