"""The console at scale: 300 subjects × 40 gates in the store; time to first paint of the deltas screen
and time to re-rank on a λ change, measured through the real app (headless Pilot).

    python bench/tui.py [--subjects 300] [--gates 40] [--n 200]

Prints: the import time and, in a real terminal (tmux), the first paint on an empty store; for the
filled store, per terminal size, each size in a fresh process (so every size starts with a cold
statistics cache, as an operator's `slayer` does): from start to the painted delta table (cold: every
paired statistic computed), from the key `5` back to the painted table (warm: "re-open in the same
process", statistics cached by store.deltas), from a λ key to the re-ranked table, and the longest the
UI's event loop was blocked meanwhile (what an operator would feel as a stall; store work runs in workers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from engine.vocab import AXIS_NAMES  # noqa: E402
from slayer_console.app import make_app  # noqa: E402
from slayer_console.context import Settings  # noqa: E402
from tui_campaign import base_outcomes, flipped, gate_event, ingest_events, subject  # noqa: E402

AXES = AXIS_NAMES[:10]  # ten axes, as the recorded figures had


def fill(store, subjects: int, gates: int, n: int) -> None:
    """A base and `subjects − 1` checkpoints, each with a result on every gate (one run per subject)."""
    rng = random.Random(7)
    gate_axes = {f"gate{g:02d}": AXES[g % len(AXES)] for g in range(gates)}
    for i in range(subjects):
        subj = subject("base" if i == 0 else f"ckpt-{i * 100}", "base" if i == 0 else "checkpoint", i * 100)
        events = []
        for gate, axis in gate_axes.items():
            base = base_outcomes(gate, n)
            worse, better = (0, 0) if i == 0 else (rng.randint(0, n // 20), rng.randint(0, n // 10))
            events.append(gate_event(subj, gate, flipped(base, worse, better), axis=axis, higher_is_better=True))
        ingest_events(store, f"gates-{i:04d}", events, "bench")


async def wait_for(pilot, predicate, timeout: float = 600.0) -> float:
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the console did not get there")
        await pilot.pause(0.01)
    return time.perf_counter() - start


class LoopLag:
    """The longest the app's event loop went without running a 5 ms ticker: what a stall looks like."""

    def __init__(self):
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - t - 0.005)

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst


def painted(app) -> bool:
    screen = app.screen
    return getattr(screen, "table", None) is not None and screen.grid.row_count and screen.grid.table is screen.table


async def measure(settings: Settings, size: tuple[int, int]) -> dict:
    """Open the console straight on the deltas screen, then leave it and come back, then change λ."""
    app = make_app(settings, mode="deltas")
    lag = LoopLag()
    out = {}
    t = time.perf_counter()
    async with app.run_test(size=size) as pilot:
        ticker = asyncio.create_task(lag.run())
        await wait_for(pilot, lambda: painted(app))
        await pilot.pause()  # the paint itself
        out["open"] = time.perf_counter() - t
        await pilot.press("1")
        await pilot.pause(0.5)
        lag.take()
        t = time.perf_counter()
        await pilot.press("5")
        await wait_for(pilot, lambda: painted(app))
        await pilot.pause()
        out["back"] = time.perf_counter() - t
        out["back lag"] = lag.take()
        for step, key in ((2.0, "plus"), (4.0, "plus"), (2.0, "minus")):
            t = time.perf_counter()
            await pilot.press(key)
            await wait_for(pilot, lambda: app.screen.table.lam == step and app.screen.grid.table is app.screen.table)
            await pilot.pause()
            out.setdefault("re-rank", []).append(time.perf_counter() - t)
            out.setdefault("re-rank lag", []).append(lag.take())
        out["rows x cols"] = (app.screen.grid.row_count, len(app.screen.grid.columns))
        ticker.cancel()
    return out


def import_time() -> float:
    """Seconds a fresh interpreter spends importing the app (best of 3, minus a bare interpreter)."""
    def run(code: str) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        return time.perf_counter() - t

    return min(run("import slayer_console.app") for _ in range(3)) - min(run("pass") for _ in range(3))


def terminal_first_paint(tmp: Path, runs: int = 3, python: str = sys.executable) -> list[tuple[float, float]]:
    """`slayer` on an empty home in a real terminal (tmux 120×40), run by `python`: seconds from launch to
    the first frame, and to the store opened (created and migrated) and shown. Empty when tmux is missing."""
    import os
    import shutil

    from test_tui_tmux import Tmux

    if shutil.which("tmux") is None:
        return []
    out = []
    for i in range(runs):
        env = {"SLAYER_HOME": str(tmp / f"empty{i}"), "TERM": "xterm-256color", "PATH": os.environ["PATH"]}
        t = time.perf_counter()
        term = Tmux(f"slayer-bench-{os.getpid()}-{i}", 120, 40, f"{python} -m slayer_console", env)
        try:
            while "Dashboard" not in term.screen():
                time.sleep(0.01)
            painted = time.perf_counter() - t
            while "No decisions yet" not in term.screen():
                time.sleep(0.01)
            out.append((painted, time.perf_counter() - t))
        finally:
            term.kill()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=300)
    ap.add_argument("--gates", type=int, default=40)
    ap.add_argument("--n", type=int, default=200, help="items per gate")
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # WxH: the child process of one terminal size
    ap.add_argument("--home", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        return measure_one(args.home, args.measure)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"import slayer_console.app: {import_time():.2f} s")
        for painted, shown in terminal_first_paint(tmp):
            print(f"empty store, real terminal: first paint {painted:.2f} s, store opened and shown {shown:.2f} s")
        settings = Settings.create(str(tmp / "home"))
        t = time.perf_counter()
        fill(settings.store(), args.subjects, args.gates, args.n)
        print(f"store: {args.subjects} subjects × {args.gates} gates × n={args.n} ingested in "
              f"{time.perf_counter() - t:.1f} s")
        settings.store().close()
        for size in ((400, 60), (200, 50), (80, 24)):
            r = measure_in_fresh_process(settings.home, size)
            print(f"terminal {size[0]}×{size[1]} (table {r['rows x cols'][0]} rows × {r['rows x cols'][1]} columns), "
                  "a fresh process:")
            print(f"  start → deltas painted (cold statistics)             {r['open']:.2f} s")
            print(f"  key 5 → deltas painted (re-open in the same process) {r['back']:.2f} s "
                  f"(longest UI stall {r['back lag'] * 1000:.0f} ms)")
            stalls = ", ".join(f"{x * 1000:.0f}" for x in r["re-rank lag"])
            print("  λ key → re-ranked, painted " + ", ".join(f"{x:.2f}" for x in r["re-rank"])
                  + f" s (longest UI stall {stalls} ms)")


def measure_in_fresh_process(home: Path, size: tuple[int, int]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", f"{size[0]}x{size[1]}", "--home", str(home)],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_one(home: str, size: str) -> None:
    """The child: one terminal size on the filled store, results as one JSON line."""
    width, height = (int(x) for x in size.split("x"))
    print(json.dumps(asyncio.run(measure(Settings.create(home), (width, height)))))


if __name__ == "__main__":
    if "--measure" in sys.argv:
        main()
    else:
        from machine_load import reported_load

        with reported_load():
            main()
