"""`slayer --help` / `--version` wall time against `python -c pass`, measured in the same run.

    python bench/cli_startup.py [--repeat 15]

Goal: < 0.3 s above the bare interpreter. Prints the medians and the difference.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def median_wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    bare = median_wall([sys.executable, "-c", "pass"], args.repeat)
    print(f"python -c pass   : {bare * 1000:6.0f} ms")
    for flag in ("--help", "--version"):
        t = median_wall([sys.executable, "-m", "slayer_console", flag], args.repeat)
        print(f"slayer {flag:10}: {t * 1000:6.0f} ms  (+{(t - bare) * 1000:.0f} ms; goal < +300 ms)")


if __name__ == "__main__":
    main()
