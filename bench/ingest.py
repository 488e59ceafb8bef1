"""Ingest throughput: 200k metric events into the store vs the same metrics into MLflow's SQLite store.

    python bench/ingest.py [--events 200000] [--runs 10000]

Prints events/s for both and the ratio (goal ≥ 10×), then the wall time of a runs listing over 10k runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import EventWriter  # noqa: E402
from store import Store  # noqa: E402
from store.ingest import ingest_bytes, ingest_run_dir  # noqa: E402
from store.queries import list_runs  # noqa: E402


def bench_slayer(tmp: Path, n: int) -> float:
    run_dir = tmp / "run"
    run_dir.mkdir()
    w = EventWriter(run_dir / "events.jsonl", "bench")
    w.emit("status", status="queued", kind="bench", experiment="bench")
    for i in range(n):
        w.emit("metric", key="loss", value=1.0 / (i + 1), step=i)
    w.close()
    store = Store.open(f"sqlite:///{tmp / 'slayer.db'}")
    t = time.perf_counter()
    stats = ingest_run_dir(store, run_dir)
    elapsed = time.perf_counter() - t
    assert stats.events == n + 1
    return n / elapsed


def bench_mlflow(tmp: Path, n: int) -> float:
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("bench")).info.run_id
    ts = int(time.time() * 1000)
    t = time.perf_counter()
    for start in range(0, n, 1000):
        client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (i + 1), ts, i) for i in range(start, min(n, start + 1000))])
    return n / (time.perf_counter() - t)


def bench_listing(tmp: Path, runs: int) -> float:
    store = Store.open(f"sqlite:///{tmp / 'many.db'}")
    for i in range(runs):
        line = (f'{{"run":"r{i:05d}","seq":1,"ts":{1_700_000_000 + i},"type":"status","status":"queued",'
                f'"kind":"gate","experiment":"e{i % 7}"}}\n').encode()
        ingest_bytes(store, f"r{i:05d}", line, 0, "bench") if i < 200 else None
    # Bulk-create the rest directly: the listing, not the creation, is what is measured here.
    with store.write() as s:
        conn = s.connection()
        conn.exec_driver_sql("INSERT INTO runs (id, experiment_id, kind, status, box, run_dir, created_ms) "
                             "VALUES (?, 1, 'gate', 'succeeded', 'local', '', ?)",
                             [(f"x{i:05d}", 1_700_000_000_000 + i) for i in range(runs - 200)])
    t = time.perf_counter()
    rows = list_runs(store)
    elapsed = time.perf_counter() - t
    assert len(rows) == runs
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ours = bench_slayer(tmp, args.events)
        theirs = bench_mlflow(tmp, args.events)
        listing = bench_listing(tmp, args.runs)
    print(f"slayer ingest : {ours:>10,.0f} metric events/s ({args.events:,} events)")
    print(f"mlflow sqlite : {theirs:>10,.0f} metrics/s (log_batch of 1000)")
    print(f"ratio         : {ours / theirs:.1f}x (goal >= 10x)")
    print(f"runs listing  : {listing * 1000:.0f} ms for {args.runs:,} runs")


if __name__ == "__main__":
    main()
