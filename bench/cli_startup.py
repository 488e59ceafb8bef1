"""`slayer --help` / `--version` wall time against `python -c pass`, measured in the same run, for this
install and for the light core install (a new virtual environment with `pip install -e .`, no extras),
plus the core install's TUI first paint in a real terminal (tmux).

    python bench/cli_startup.py [--repeat 15] [--core-venv DIR]

Goal: < 0.3 s above the bare interpreter. Without --core-venv the core install is made in a temporary
folder (its install time and size are printed too); pip's cache makes that seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def startup(python: str, label: str, repeat: int) -> None:
    bare = median_wall([python, "-c", "pass"], repeat)
    print(f"{label}: python -c pass   : {bare * 1000:6.0f} ms")
    for flag in ("--help", "--version"):
        t = median_wall([python, "-m", "slayer_console", flag], repeat)
        print(f"{label}: slayer {flag:10}: {t * 1000:6.0f} ms  (+{(t - bare) * 1000:.0f} ms; goal < +300 ms)")


def make_core_venv(where: Path) -> Path:
    venv = where / "core-venv"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)
    size = subprocess.run(["du", "-sh", str(venv)], capture_output=True, text=True).stdout.split()[0]
    print(f"core install (new venv, pip install -e ., warm pip cache): {time.perf_counter() - t:.1f} s, {size}")
    return venv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--core-venv", type=Path, default=None, help="an existing core-only virtual environment")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    startup(sys.executable, "this install", args.repeat)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        venv = args.core_venv or make_core_venv(tmp)
        python = str(venv / "bin" / "python")
        startup(python, "core install", args.repeat)
        sys.path[:0] = [str(ROOT / "bench")]
        from tui import terminal_first_paint

        for painted, shown in terminal_first_paint(tmp, python=python):
            print(f"core install, empty store, real terminal: first paint {painted:.2f} s, "
                  f"store opened and shown {shown:.2f} s")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
