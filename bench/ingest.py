"""Ingest throughput: metric events into the store vs the same metrics into MLflow's SQLite store.

    python bench/ingest.py [--events 200000] [--runs 10000] [--repeat 3]

Two comparisons, each with the encoding inside both clocks (our EventWriter writing events.jsonl, as the
training process does, plus ingest; MLflow's `Metric` construction plus `log_batch`):
(a) defaults, as a user gets them: our store runs WAL + synchronous=NORMAL and ingests the file in one
    transaction; MLflow runs SQLite's defaults (rollback journal, synchronous=FULL) and commits per
    `log_batch` of 1000. NORMAL in WAL mode may lose the last commits on power loss (never corrupts);
    FULL makes every commit durable. So (a) is not equal durability.
(b) like for like: both WAL + synchronous=NORMAL and one commit per 1000 metrics (ours: 1000 events
    written, then ingested, repeated, as a live follow does).
Median of --repeat runs of each; then the wall time of a runs listing over 10k runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import EventWriter  # noqa: E402
from store import Store  # noqa: E402
from store.ingest import ingest_bytes, ingest_run_dir  # noqa: E402
from store.queries import list_runs  # noqa: E402

BATCH = 1000  # MLflow's largest log_batch


def bench_slayer(tmp: Path, n: int, commit_every: int | None) -> float:
    """Events/s for writing n metric events and ingesting them: in one go, or `commit_every` at a time."""
    run_dir = tmp / "run"
    run_dir.mkdir()
    store = Store.open(f"sqlite:///{tmp / 'slayer.db'}")
    t = time.perf_counter()
    w = EventWriter(run_dir / "events.jsonl", "bench")
    w.emit("status", status="queued", kind="bench", experiment="bench")
    step = commit_every or n
    for start in range(0, n, step):
        for i in range(start, min(n, start + step)):
            w.emit("metric", key="loss", value=1.0 / (i + 1), step=i)
        if commit_every:
            ingest_run_dir(store, run_dir)
    w.close()
    stats = ingest_run_dir(store, run_dir)
    elapsed = time.perf_counter() - t
    assert commit_every or stats.events == n + 1
    store.close()
    return n / elapsed


def bench_mlflow(tmp: Path, n: int, like_ours: bool) -> float:
    import sqlalchemy
    from sqlalchemy import event

    def wal_normal(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    if like_ours:
        event.listen(sqlalchemy.engine.Engine, "connect", wal_normal)
    try:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        run_id = client.create_run(client.create_experiment("bench")).info.run_id
        ts = int(time.time() * 1000)
        t = time.perf_counter()
        for start in range(0, n, BATCH):
            client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (i + 1), ts, i)
                                              for i in range(start, min(n, start + BATCH))])
        return n / (time.perf_counter() - t)
    finally:
        if like_ours:
            event.remove(sqlalchemy.engine.Engine, "connect", wal_normal)


def journal_of(db: Path) -> str:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]


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


def median_of(repeat: int, measure) -> tuple[float, float, float]:
    """Median, min and max of `repeat` measurements, each in a fresh directory."""
    values = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            values.append(measure(Path(d)))
    return statistics.median(values), min(values), max(values)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, r = args.events, args.repeat
    with tempfile.TemporaryDirectory() as d:  # which journal each side really ran with
        tmp = Path(d)
        bench_slayer(tmp, 1000, None)
        (tmp / "run").rename(tmp / "run0")
        for sub, like_ours in (("default", False), ("like", True)):
            (tmp / sub).mkdir()
            bench_mlflow(tmp / sub, 1000, like_ours=like_ours)
        print(f"journals      : slayer {journal_of(tmp / 'slayer.db')}, mlflow default "
              f"{journal_of(tmp / 'default' / 'mlflow.db')}, mlflow like ours {journal_of(tmp / 'like' / 'mlflow.db')}")
    rows = [
        ("(a) defaults", median_of(r, lambda t: bench_slayer(t, n, None)),
         median_of(r, lambda t: bench_mlflow(t, n, like_ours=False))),
        ("(b) like for like", median_of(r, lambda t: bench_slayer(t, n, BATCH)),
         median_of(r, lambda t: bench_mlflow(t, n, like_ours=True))),
    ]
    print(f"{n:,} metric events, median of {r} (min-max); encoding inside both clocks")
    for label, ours, theirs in rows:
        print(f"{label:<18}: slayer {ours[0]:>9,.0f}/s ({ours[1]:,.0f}-{ours[2]:,.0f}), "
              f"mlflow {theirs[0]:>8,.0f}/s ({theirs[1]:,.0f}-{theirs[2]:,.0f}), ratio {ours[0] / theirs[0]:.1f}x")
    print("(a): slayer WAL + synchronous=NORMAL, one commit; mlflow rollback journal + synchronous=FULL, "
          "a commit per log_batch of 1000")
    print("(b): both WAL + synchronous=NORMAL, a commit per 1000 metrics")
    with tempfile.TemporaryDirectory() as d:
        listing = bench_listing(Path(d), args.runs)
    print(f"runs listing  : {listing * 1000:.0f} ms for {args.runs:,} runs")


if __name__ == "__main__":
    from machine_load import reported_load

    with reported_load():
        main()
