"""`python -m engine run JOB.toml --run-dir DIR`: run one job headless (no store, no network)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.errors import SpecError


def _redirect_output(log_path: Path):
    """Send this process's stdout/stderr (and its children's) to log.txt; return the original stderr."""
    original = os.fdopen(os.dup(2), "w")
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a job spec into a run directory")
    run.add_argument("spec")
    run.add_argument("--run-dir", required=True)
    run.add_argument("--run-id", default=None)
    run.add_argument("--pid-file", default=None, help="write this process's pid here (detached launches)")
    run.add_argument("--no-redirect", action="store_true", help="keep stdout/stderr on the terminal")
    args = parser.parse_args(argv)

    from engine.jobs import load_spec
    from engine.runner import run_job

    try:
        spec = load_spec(args.spec)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.pid_file:
        Path(args.pid_file).write_text(str(os.getpid()))
    err = sys.stderr if args.no_redirect else _redirect_output(run_dir / "log.txt")
    status = run_job(spec, run_dir, args.run_id)
    if status != "succeeded":
        import json

        last = json.loads((run_dir / "events.jsonl").read_bytes().splitlines()[-1])
        print(f"error: {status}: {last.get('error', '')}", file=err)
        return 2 if last.get("bad_input") else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
