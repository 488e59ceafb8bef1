"""What to serve and benchmark, from the store: the subject's exported GGUF files and the base's, as the
`serve` and `bench.serve` specs `slayer serve` prints."""

from __future__ import annotations

from engine.errors import SpecError
from store.card import _artifact_path, _gather, _pick_subject, _shipped
from store.deltas import delta_table
from store.store import Store


def _gguf(a, run) -> dict:
    return {"file": str(_artifact_path(a, run)), "quant": a.extra.get("quant", ""), "sha256": a.sha256,
            "box": run.box}


def serve_targets(store: Store, experiment: str, subject: str | None = None, quant: str | None = None
                  ) -> tuple[str, dict, dict | None]:
    """(subject name, its GGUF file, the base's GGUF file of the same quant or None).

    The subject defaults to the card's (latest accepted, else best); `quant` picks among its files (default:
    the first quantised one, else the first). No GGUF for the subject is one line naming it."""
    table = delta_table(store, experiment)
    sid = _pick_subject(store, experiment, subject, table)
    f = _gather(store, experiment, sid, table.base_subject_id)
    files = [(a, run) for a, run in _shipped(f) if a.kind == "gguf"]
    if not files:
        raise SpecError(f"experiment {experiment!r}: subject {f.subj.name!r} has no exported GGUF file "
                        "(run an export.gguf job on it first)")
    if quant:
        chosen = [x for x in files if x[0].extra.get("quant", "").lower() == quant.lower()]
        if not chosen:
            have = ", ".join(x[0].extra.get("quant", "?") for x in files)
            raise SpecError(f"subject {f.subj.name!r}: no {quant} GGUF (exported: {have})")
    else:
        chosen = [x for x in files if not x[0].extra.get("quant", "").upper().startswith(("F", "BF"))] or files
    shipped = _gguf(*chosen[0])
    base = None
    for a, run in f.arts:
        sub = a.extra.get("subject") or {}
        from_base = (a.extra.get("source") or {}).get("adapter") is None and (a.extra.get("source") or {}) != {}
        if a.kind == "gguf" and (sub.get("kind") == "base" or from_base) and a.extra.get("quant") == shipped["quant"]:
            base = _gguf(a, run)
    return f.subj.name, shipped, base
