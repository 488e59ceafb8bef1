"""`slayer demo` on several seeds, each into its own temporary home, and the per-seed outcome table
(docs/demo.md): does the no-replay adapter FAIL a general axis, does the accepted candidate PASS every
general axis with a style gain and a KLEJ gain, and how long did the demo take at what load.

    python bench/demo_seeds.py [--fast] [--parallel] 0 1 2
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_load import load_line

ROOT = Path(__file__).resolve().parents[1]


def run(seed: int, fast: bool, home: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "slayer_console", "demo", "--seed", str(seed)] + (["--fast"] if fast else [])
    log = open(home / "demo.log", "w")
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, "SLAYER_HOME": str(home)}, stdout=log, stderr=log)


def row(seed: int, home: Path, wall_s: float, rc: int) -> str:
    from slayer_console.context import Settings
    from slayer_console.demo import outcome

    if rc != 0:
        return f"| {seed} | demo failed (exit {rc}, log {home / 'demo.log'}) | | | | | | {wall_s:.0f} |"
    o = outcome(Settings.create(str(home)), "demo")
    gain = lambda v: "—" if v is None else f"{v:+.1f}"  # noqa: E731
    general = ", ".join(f"{a} {v}" for a, v in sorted(o["pick_general"].items()))
    return (f"| {seed} | {', '.join(o['no_replay_failed_axes']) or 'none'} ({o['no_replay_worst_drop_pp']:+.1f}) "
            f"| {o['pick']} | {general} ({o['pick_worst_drop_pp']:+.1f}) | {gain(o['style_gain_pp'])} "
            f"| {gain(o['klej_gain_pp'])} | {'yes' if o['shown'] else 'no'} | {wall_s:.0f} |")


def main() -> None:
    fast, parallel = "--fast" in sys.argv, "--parallel" in sys.argv
    seeds = [int(a) for a in sys.argv[1:] if not a.startswith("--")] or [0, 1, 2]
    print(load_line("start"), flush=True)
    homes = {s: Path(tempfile.mkdtemp(prefix=f"slayer-demo-{s}-")) for s in seeds}
    results = {}
    procs = {}
    for s in seeds:
        procs[s] = (run(s, fast, homes[s]), time.perf_counter())
        if not parallel:
            results[s] = (procs[s][0].wait(), time.perf_counter() - procs[s][1])
    for s, (proc, started) in procs.items():
        if s not in results:
            results[s] = (proc.wait(), time.perf_counter() - started)
    print(load_line("end"), flush=True)
    print("| seed | no-replay: general axes FAILed (worst drop pp) | accepted | its general axes (worst drop pp) "
          "| style gain pp | KLEJ gain pp | story shown | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for s in seeds:
        print(row(s, homes[s], results[s][1], results[s][0]))


if __name__ == "__main__":
    main()
