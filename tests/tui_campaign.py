"""Build a campaign in a store the way the engine would: gate_result events ingested through the real
path (store.ingest.ingest_bytes). Per-item outcomes are the base's with chosen flips, so every delta,
CI and verdict is known in advance. Used by the TUI tests and bench/tui.py."""

from __future__ import annotations

import json

from engine.subjects import Recipe, make_subject

# gate → (axis, higher_is_better)
GATES = {
    "polish_psc": ("pl_nlu", True), "polish_dyk": ("pl_nlu", True), "style_pref": ("pl_style", True),
    "grammar": ("pl_grammar", False), "mmlu": ("en_knowledge", True), "gsm8k": ("math", True),
    "mbpp": ("code", True), "ifeval": ("instruction", True), "xstest": ("safety", True),
}
N = 200


def base_outcomes(gate: str, n: int = N) -> list[float]:
    """Deterministic 0/1 outcomes, about 60 % right, different per gate."""
    salt = sum(map(ord, gate))
    return [1.0 if (i * 7 + salt) % 5 < 3 else 0.0 for i in range(n)]


def flipped(base: list[float], worse: int, better: int) -> list[float]:
    """The base's outcomes with `worse` right answers made wrong and `better` wrong ones made right."""
    out = list(base)
    for want, count in ((1.0, worse), (0.0, better)):
        idx = [i for i, v in enumerate(base) if v == want][:count]
        for i in idx:
            out[i] = 1.0 - want
    return out


def gate_event(subject: dict, gate: str, outcomes: list[float], axis: str | None = None,
               higher_is_better: bool | None = None, tolerance_pp: float = 0.5) -> dict:
    axis_default, hib_default = GATES.get(gate, ("en_knowledge", True))
    acc = sum(outcomes) / len(outcomes)
    return {"type": "gate_result", "subject": subject, "gate": gate, "axis": axis or axis_default,
            "scorer": "likelihood", "metrics": {"acc": acc}, "primary": "acc",
            "higher_is_better": hib_default if higher_is_better is None else higher_is_better,
            "stderr": {"acc": 0.03}, "n": len(outcomes), "outcomes": outcomes, "preds": None, "golds": None,
            "fingerprint": {"gate": gate, "n": len(outcomes), "seed": 1234, "template": "t1"},
            "tolerance_pp": tolerance_pp, "elapsed_s": 1.0, "items_per_s": 100.0}


def subject(name: str, kind: str, step: int | None = None) -> dict:
    return make_subject(name, kind, Recipe.hf("Qwen/Qwen3.5-27B", None if kind == "base" else f"ad/{name}"))


def ingest_events(store, run_id: str, events: list[dict], experiment: str, kind: str = "gate",
                  final: str | None = "succeeded") -> None:
    """Wrap `events` in queued/running(/final) status events with seq and ts, and ingest them."""
    from store.ingest import ingest_bytes

    body = [{"type": "status", "status": "queued", "kind": kind, "experiment": experiment},
            {"type": "status", "status": "running"}, *events]
    if final:
        body.append({"type": "status", "status": final})
    lines = [json.dumps({"run": run_id, "seq": i, "ts": 1_700_000_000 + i, **e}) for i, e in enumerate(body, 1)]
    ingest_bytes(store, run_id, ("\n".join(lines) + "\n").encode(), 0, "test")


# name → kind, step, {gate: (worse, better)} flips against the base; unlisted gates equal the base.
# At λ 1 "ckpt-2400" scores best (style +9, worst drop 3, a WARN); at λ 2 "ckpt-1600" does (+5, no drop).
# "ckpt-3200" has a significant mbpp regression (FAIL).
SLAYER_V2 = {
    "Qwen3.5-27B": ("base", None, {}),
    "slayer-v1": ("reference", None, {"style_pref": (0, 8), "polish_psc": (0, 4), "gsm8k": (4, 0)}),
    "ckpt-800": ("checkpoint", 800, {"style_pref": (0, 6), "polish_psc": (0, 6)}),
    "ckpt-1600": ("checkpoint", 1600, {"style_pref": (0, 10), "polish_dyk": (0, 4)}),
    "ckpt-2400": ("checkpoint", 2400, {"style_pref": (0, 18), "mbpp": (8, 2), "polish_psc": (0, 8)}),
    "ckpt-3200": ("checkpoint", 3200, {"style_pref": (0, 24), "mbpp": (30, 0)}),
}


def build_campaign(store, experiment: str = "slayer-v2", plan: dict = SLAYER_V2, run_id: str = "run-gates") -> dict:
    """Ingest one gate run holding every subject × gate of `plan`; returns name → subject dict."""
    events, subjects = [], {}
    for name, (kind, step, flips) in plan.items():
        subj = subject(name, kind, step)
        subjects[name] = subj
        if kind == "checkpoint":
            events.append({"type": "checkpoint", "step": step, "path": f"ckpt/{step}", "subject": subj})
        for gate in GATES:
            worse, better = flips.get(gate, (0, 0))
            events.append(gate_event(subj, gate, flipped(base_outcomes(gate), worse, better)))
    ingest_events(store, run_id, events, experiment)
    return subjects
