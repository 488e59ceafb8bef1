"""Builds small experiments in a store from constructed gate_result events (through the real ingest)."""

from __future__ import annotations

import json

from engine.subjects import Recipe, make_subject
from store.ingest import ingest_bytes

FP = {"dataset": "d0", "n": 0, "seed": 1, "template": "t0", "scorer": "v1", "backend": "hf", "dtype": "bf16",
      "batch": 8, "harness": "1"}


def subject(name: str, kind: str, adapter: str | None = None, **recipe) -> dict:
    """The base is the model "tiny"; a reference is its own model, named like it; the others are adapters on
    "tiny" (`ad/NAME` unless given), so subjects of different names are different subjects."""
    if kind == "reference":
        return make_subject(name, kind, Recipe.hf(name, adapter, **recipe))
    return make_subject(name, kind, Recipe.hf("tiny", None if kind == "base" else adapter or f"ad/{name}", **recipe))


def gate_event(subj: dict, gate: str, axis: str, outcomes: list, *, metric: str = "acc", value=None,
               higher_is_better: bool = True, tolerance_pp: float = 0.5, preds=None, golds=None,
               fingerprint: dict | None = None) -> dict:
    fp = {**FP, "dataset": gate, "n": len(outcomes), **(fingerprint or {})}
    value = sum(outcomes) / len(outcomes) if value is None else value
    return {"type": "gate_result", "subject": subj, "gate": gate, "axis": axis, "scorer": "likelihood",
            "metrics": {metric: value}, "primary": metric, "higher_is_better": higher_is_better,
            "stderr": {metric: 0.0}, "n": len(outcomes), "outcomes": outcomes, "preds": preds, "golds": golds,
            "fingerprint": fp, "tolerance_pp": tolerance_pp, "elapsed_s": 1.0, "items_per_s": len(outcomes)}


def ingest_events(store, run_id: str, experiment: str, events: list[dict], kind: str = "gate",
                  run_dir: str = "") -> None:
    """Write `events` as run `run_id` (queued → running → … → succeeded) and ingest them."""
    lines = [{"type": "status", "status": "queued", "kind": kind, "experiment": experiment},
             {"type": "status", "status": "running"}, *events, {"type": "status", "status": "succeeded"}]
    data = b"".join(json.dumps({"run": run_id, "seq": i, "ts": 1000.0 + i, **e}).encode() + b"\n"
                    for i, e in enumerate(lines, 1))
    ingest_bytes(store, run_id, data, 0, f"{run_id}/events.jsonl", experiment=experiment,
                 run_dir=run_dir)


def flips(n: int, base_right: int, lost: int, gained: int) -> tuple[list[int], list[int]]:
    """Paired 0/1 vectors: the base gets `base_right` of n right; the candidate loses `lost` of those
    and gains `gained` of the base's wrong ones (so b = lost, c = gained)."""
    base = [1] * base_right + [0] * (n - base_right)
    cand = list(base)
    for i in range(lost):
        cand[i] = 0
    for i in range(gained):
        cand[base_right + i] = 1
    return base, cand
