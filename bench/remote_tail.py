"""Remote tail over loopback SSH: event → store row latency while a job writes, and the catch-up rate of
100k events after the connection comes back. A real OpenSSH sshd on 127.0.0.1 plays the box.

    python bench/remote_tail.py [--events 300] [--rate 50] [--backlog 100000]

Goals (issue 7): latency p95 < 1 s; catch-up ≥ 50k events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from engine.events import EventWriter  # noqa: E402
from remotes.follow import follow_run  # noqa: E402
from sshd import SshServer, engine_box, register  # noqa: E402
from store import Store  # noqa: E402
from store.ingest import ingest_bytes, register_run  # noqa: E402

WRITER = """
import sys, time
from engine.events import EventWriter
w = EventWriter(sys.argv[1], sys.argv[2])
n, rate = int(sys.argv[3]), float(sys.argv[4])
w.emit("status", status="running")
for i in range(n):
    w.emit("metric", key="loss", value=1.0 / (i + 1), step=i)
    time.sleep(1 / rate)
w.emit("status", status="succeeded")
"""


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def bench_latency(home: Path, store: Store, run_dir: Path, n: int, rate: float) -> list[float]:
    """A writer on the box emits `n` metrics at `rate`/s; each event's latency is the moment its batch was
    committed to the store minus the event's own timestamp."""
    run_dir.mkdir(parents=True)
    register_run(store, "lat", kind="bench", experiment="bench", run_dir=str(run_dir), box="box")
    landed: dict[int, float] = {}
    last = [0]

    def on_ingest(stats) -> None:
        now = time.time()
        for seq in range(last[0] + 1, stats.seq + 1):
            landed[seq] = now
        last[0] = stats.seq

    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir / "events.jsonl"), "lat", str(n), str(rate)],
                              env={"PYTHONPATH": str(ROOT)})
    status = await follow_run(home, store, "lat", on_ingest=on_ingest, poll_s=0.2)
    writer.wait()
    assert status == "succeeded", status
    import json

    ts = {e["seq"]: e["ts"] for e in map(json.loads, (run_dir / "events.jsonl").read_text().splitlines())}
    return [landed[s] - ts[s] for s in ts]


async def bench_catch_up(home: Path, store: Store, server: SshServer, run_dir: Path, backlog: int) -> float:
    """The follower is attached; the box goes away, the job writes `backlog` events meanwhile; the box comes
    back. Rate = backlog / (caught up − reconnected)."""
    run_dir.mkdir(parents=True)
    writer = EventWriter(run_dir / "events.jsonl", "up")
    writer.emit("status", status="running")
    register_run(store, "up", kind="bench", experiment="bench", run_dir=str(run_dir), box="box")
    marks: dict[str, float] = {}

    def on_state(message: str) -> None:
        if "reconnected" in message:
            marks["reconnected"] = time.perf_counter()

    follower = asyncio.create_task(follow_run(home, store, "up", on_state=on_state, poll_s=0.2))
    await asyncio.sleep(1.0)
    server.stop()
    for i in range(backlog):
        writer.emit("metric", key="loss", value=1.0 / (i + 1), step=i)
    writer.emit("status", status="succeeded")
    writer.close()
    server.start()
    assert await follower == "succeeded"
    return backlog / (time.perf_counter() - marks["reconnected"])


def local_ingest_rate(tmp: Path, run_dir: Path, backlog: int) -> float:
    """The same bytes ingested from a local file, no SSH: the store's share of the catch-up."""
    store = Store.open(str(tmp / "local.db"))
    data = (run_dir / "events.jsonl").read_bytes()
    t = time.perf_counter()
    ingest_bytes(store, "up", data, 0, "local")
    return backlog / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300, help="events for the latency run")
    parser.add_argument("--rate", type=float, default=50, help="events per second while measuring latency")
    parser.add_argument("--backlog", type=int, default=100_000, help="events written while the box is away")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="slayer-bench-"))
    home = tmp / "home"
    home.mkdir()
    server = SshServer(tmp / "sshd")
    server.start()
    try:
        register(home, engine_box(server, "box", tmp / "wd"), server)
        store = Store.open(str(home / "slayer.db"))
        lat = asyncio.run(bench_latency(home, store, tmp / "wd" / "lat", args.events, args.rate))
        rate = asyncio.run(bench_catch_up(home, store, server, tmp / "wd" / "up", args.backlog))
    finally:
        server.stop()
    print(f"latency over {len(lat)} events at {args.rate:g}/s (poll 0.2 s): p50 {statistics.median(lat) * 1000:.0f} ms,"
          f" p95 {percentile(lat, 95) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms  (goal p95 < 1000 ms)")
    print(f"catch-up of {args.backlog} events after reconnect: {rate:,.0f} events/s  (goal ≥ 50,000)")
    print(f"  the same bytes ingested from a local file: {local_ingest_rate(tmp, tmp / 'wd' / 'up', args.backlog):,.0f}"
          f" events/s")


if __name__ == "__main__":
    from machine_load import reported_load

    with reported_load():
        main()
