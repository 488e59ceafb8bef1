"""Soak: local jobs writing events, ingesting processes and the console's poller, with random `kill -9` of jobs
and ingesters, for a bounded time; then one final ingest and the count.

    python bench/soak.py [--minutes 5] [--jobs 8] [--ingesters 2] [--seed 0] [--db URL]

Every job is a real `python -m engine run` of a `debug.sleep` spec (a metric event every 2 ms); each ingester
is its own process calling `ingest_run_dir` over every run directory in a loop; the console's `Poller` runs
in this process every 0.5 s, as the TUI's does. Every 1–3 s a random job or ingester is killed with SIGKILL
and a new one takes its place. At the end everything is killed, the store ingests every run once more, and
for each run the metric events in its events.jsonl (complete lines) are compared with the store's rows:
lost = in the file, not in the store; doubled = more rows than lines (the (run, seq) key forbids it).
Prints the counts, lock errors seen by the ingesters, the store's size and the ingesters' peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INGESTER = """
import sys, time, pathlib
from store import Store
from store.ingest import ingest_run_dir
store = Store.open(sys.argv[1])
runs = pathlib.Path(sys.argv[2])
while True:
    for d in sorted(runs.glob('*')):
        if (d / 'events.jsonl').exists():
            try:
                ingest_run_dir(store, d)
            except Exception as e:  # counted by the soak: a lock error is a failure
                print(f'ERROR {type(e).__name__}: {e}', file=sys.stderr, flush=True)
    time.sleep(0.05)
"""

SPEC = 'kind = "debug.sleep"\nsteps = 1000000\ninterval_s = 0.002\n'


def peak_kib(pid: int) -> int:
    try:
        return int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("VmHWM:")).split()[1])
    except (OSError, StopIteration):
        return 0


class Soak:
    def __init__(self, home: Path, url: str, rng: random.Random):
        from store import Store

        self.home, self.url, self.rng = home, url, rng
        self.runs = home / "runs"
        self.runs.mkdir(parents=True)
        self.spec = home / "job.toml"
        self.spec.write_text(SPEC)
        self.store = Store.open(url)
        self.jobs: dict[str, subprocess.Popen] = {}
        self.ingesters: list[subprocess.Popen] = []
        self.errors = home / "ingest-errors.txt"
        self.kills = {"job": 0, "ingester": 0}
        self.peak_ingester_kib = 0
        self.started = 0

    def start_job(self) -> None:
        from store.ingest import register_run

        run_id = f"soak-{self.started:04d}"
        self.started += 1
        register_run(self.store, run_id, kind="debug.sleep", experiment="soak", run_dir=str(self.runs / run_id))
        self.jobs[run_id] = subprocess.Popen(
            [sys.executable, "-m", "engine", "run", str(self.spec), "--run-dir", str(self.runs / run_id),
             "--run-id", run_id], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start_ingester(self) -> None:
        with open(self.errors, "a") as err:
            self.ingesters.append(subprocess.Popen([sys.executable, "-c", INGESTER, self.url, str(self.runs)],
                                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err))

    def kill_one(self) -> None:
        self.peak_ingester_kib = max([self.peak_ingester_kib, *(peak_kib(p.pid) for p in self.ingesters)])
        if self.rng.random() < 0.7:
            run_id = self.rng.choice(sorted(self.jobs))
            self.jobs.pop(run_id).send_signal(signal.SIGKILL)
            self.kills["job"] += 1
            self.start_job()
        else:
            victim = self.ingesters.pop(self.rng.randrange(len(self.ingesters)))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            self.kills["ingester"] += 1
            self.start_ingester()

    def stop_all(self) -> None:
        self.peak_ingester_kib = max([self.peak_ingester_kib, *(peak_kib(p.pid) for p in self.ingesters)])
        for proc in [*self.jobs.values(), *self.ingesters]:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


def poll_like_the_console(store, home: Path, stop: threading.Event, problems: list[str]) -> None:
    from slayer_console.live import Poller

    poller = Poller(store, home)
    while not stop.is_set():
        try:
            problems.extend(poller.poll().problems)
        except Exception as e:  # noqa: BLE001  (a failure here is what the soak is looking for)
            problems.append(f"{type(e).__name__}: {e}")
        stop.wait(0.5)


def count(soak: Soak) -> dict:
    """Metric events per run in the files (complete lines) and in the store, after one final ingest each."""
    from sqlalchemy import func, select

    from store.ingest import ingest_run_dir
    from store.models import Metric

    written = stored = lost = doubled = 0
    for run_dir in sorted(soak.runs.glob("*")):
        ingest_run_dir(soak.store, run_dir)
        seqs = set()
        with open(run_dir / "events.jsonl", "rb") as f:
            for line in f:
                if line.endswith(b"\n"):
                    event = json.loads(line)
                    if event["type"] == "metric":
                        seqs.add(event["seq"])
        with soak.store.session() as s:
            rows = s.execute(select(func.count(), func.count(func.distinct(Metric.seq)))
                             .where(Metric.run_id == run_dir.name)).one()
            in_store = set(s.execute(select(Metric.seq).where(Metric.run_id == run_dir.name)).scalars())
        written += len(seqs)
        stored += rows[0]
        lost += len(seqs - in_store)
        doubled += rows[0] - rows[1] + len(in_store - seqs)
    return {"runs": len(list(soak.runs.glob("*"))), "metric events written": written, "rows in the store": stored,
            "lost": lost, "doubled": doubled}


def store_bytes(url: str) -> int | None:
    if not url.startswith("sqlite:///"):
        return None
    path = Path(url.removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--ingesters", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", default=None, help="store URL (default: an SQLite file in a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        home = Path(d)
        url = args.db or f"sqlite:///{home / 'slayer.db'}"
        soak = Soak(home, url, random.Random(args.seed))
        for _ in range(args.jobs):
            soak.start_job()
        for _ in range(args.ingesters):
            soak.start_ingester()
        stop, problems = threading.Event(), []
        poller = threading.Thread(target=poll_like_the_console, args=(soak.store, home, stop, problems))
        poller.start()
        end = time.monotonic() + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(min(soak.rng.uniform(1, 3), max(0.0, end - time.monotonic())))
            if time.monotonic() < end:
                soak.kill_one()
        stop.set()
        poller.join()
        soak.stop_all()
        counts = count(soak)
        errors = [line for line in soak.errors.read_text().splitlines() if line.startswith("ERROR")]
        size = store_bytes(url)
        print(f"{args.minutes:g} min, {args.jobs} jobs, {args.ingesters} ingesters, the console's poller; killed "
              f"{soak.kills['job']} jobs and {soak.kills['ingester']} ingesters with SIGKILL")
        for key, value in counts.items():
            print(f"  {key:<22} {value:,}")
        print(f"  ingester errors        {len(errors)} (lock errors: {sum('locked' in e for e in errors)})")
        print(f"  console poller errors  {len(problems)}")
        print(f"  store size             {size / 1e6:.1f} MB" if size is not None else "  store size             n/a")
        print(f"  ingester peak RSS      {soak.peak_ingester_kib / 1024:.0f} MiB; this process "
              f"{peak_kib(os.getpid()) / 1024:.0f} MiB")
        for e in (errors + problems)[:5]:
            print("   ", e)
        ok = counts["lost"] == 0 and counts["doubled"] == 0 and not errors and not problems
        print("PASS" if ok else "FAIL")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    from machine_load import reported_load

    with reported_load():
        main()
