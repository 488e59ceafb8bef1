"""The cold delta table: 300 subjects × 40 gates (n = 500, B = 2000) from the store, every paired statistic
computed, no cache — and the same pairs through the previous per-pair algorithm, in the same run.

    python bench/deltas_cold.py [--subjects 300] [--gates 40] [--n 500] [--repeats 3]

Prints the load average at start and end, the ingest time (setup), then per repeat: `delta_table` cold
(load the outcomes from SQLite + one shared-weight bootstrap per gate + cells), the statistics alone
(vectorised per gate), and on a sample of pairs scaled to all of them: the same statistics one pair at a
time (a batch of one: its own weights), and the previous algorithm (a binomial-chain bootstrap per pair,
as store/stats.py had it until the vectorisation).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from engine.vocab import AXIS_NAMES  # noqa: E402
from store import Store, deltas, stats  # noqa: E402
from tui_campaign import base_outcomes, gate_event, ingest_events, subject  # noqa: E402

AXES = AXIS_NAMES[:10]  # ten axes, as the recorded figures had


def fill(store, subjects: int, gates: int, n: int) -> dict[str, tuple[list, list]]:
    """A base and `subjects − 1` checkpoints with 0/1 outcomes on every gate; each checkpoint loses and
    gains random items (up to 5 % and 10 %). Returns gate → (base outcomes, candidates' outcomes)."""
    rng = random.Random(7)
    gate_axes = {f"gate{g:02d}": AXES[g % len(AXES)] for g in range(gates)}
    vectors = {g: (base_outcomes(g, n), []) for g in gate_axes}
    for i in range(subjects):
        subj = subject("base" if i == 0 else f"ckpt-{i * 100}", "base" if i == 0 else "checkpoint", i * 100)
        events = []
        for gate, axis in gate_axes.items():
            base, cands = vectors[gate]
            out = list(base)
            if i:
                for j in rng.sample(range(n), rng.randint(0, n // 10)):
                    out[j] = 1.0 - out[j]
                cands.append(out)
            events.append(gate_event(subj, gate, out, axis=axis, higher_is_better=True))
        ingest_events(store, f"gates-{i:04d}", events, "bench")
    return vectors


def chain_bootstrap(base, cand, B: int = stats.B_DEFAULT, seed: int = stats.SEED) -> tuple[float, float]:
    """The previous paired bootstrap: resample counts per distinct difference value, drawn per pair as a
    chain of conditional binomials from a generator seeded afresh. Returns its percentile CI."""
    d = np.asarray(cand, dtype=float) - np.asarray(base, dtype=float)
    values, counts = np.unique(d, return_counts=True)
    rng = np.random.default_rng(seed)
    draws = np.empty((B, len(counts)), dtype=np.int64)
    left, remaining = np.full(B, len(d), dtype=np.int64), len(d)
    for j, c in enumerate(counts[:-1]):
        draws[:, j] = rng.binomial(left, min(1.0, int(c) / remaining)) if remaining else 0
        left -= draws[:, j]
        remaining -= int(c)
    draws[:, -1] = left
    lo, hi = np.quantile(draws @ values / len(d), [stats.ALPHA / 2, 1 - stats.ALPHA / 2])
    return float(lo), float(hi)


def timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=300)
    ap.add_argument("--gates", type=int, default=40)
    ap.add_argument("--n", type=int, default=500, help="items per gate")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample", type=int, default=300, help="pairs timed one by one (scaled to all pairs)")
    args = ap.parse_args()
    from machine_load import reported_load

    with reported_load(), tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/slayer.db")
        t = time.perf_counter()
        vectors = fill(store, args.subjects, args.gates, args.n)
        pairs = sum(len(c) for _, c in vectors.values())
        print(f"store: {args.subjects} subjects × {args.gates} gates × n={args.n} ingested in "
              f"{time.perf_counter() - t:.1f} s ({pairs} pairs)")
        for r in range(args.repeats):
            deltas._STATS_CACHE.clear()
            cold = timed(lambda: deltas.delta_table(store, "bench"))
            vectorised = timed(lambda: [stats.compare_many(b, c, seed=deltas.gate_seed(g))
                                        for g, (b, c) in vectors.items()])
            sample = random.Random(r).sample([(g, b, x) for g, (b, c) in vectors.items() for x in c], args.sample)
            scale = pairs / len(sample)
            alone = timed(lambda: [stats.compare(b, x, seed=deltas.gate_seed(g)) for g, b, x in sample]) * scale
            chain = timed(lambda: [chain_bootstrap(b, x) for _, b, x in sample]) * scale
            print(f"repeat {r + 1}: delta_table cold {cold:.2f} s | statistics vectorised per gate {vectorised:.2f} s"
                  f" | each pair alone (no shared weights) ≈ {alone:.1f} s | previous per-pair chain ≈ {chain:.1f} s")


if __name__ == "__main__":
    main()
