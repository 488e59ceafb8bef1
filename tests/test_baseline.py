"""References: the ready re-baseline spec (`jobs example gate --for rebaseline`) and the baseline table
(`deltas EXP --vs REFERENCE`) reproduced from the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from deltas_fixtures import flips, gate_event, ingest_events, subject

from store import Store

ROOT = Path(__file__).resolve().parents[1]


def slayer(*args, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLAYER_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "slayer_console", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_the_rebaseline_recipe_gates_base_v1_and_bielik_on_klej_with_likelihood_scoring(home):
    from engine.gates.run import resolve_gates
    from engine.jobs import parse_spec

    out = slayer("jobs", "example", "gate", "--for", "rebaseline", home=home)
    assert out.returncode == 0, out.stderr
    spec = parse_spec(tomllib.loads(out.stdout), "rebaseline")
    models = {s.name: (s.kind, s.model, s.adapter) for s in spec.config.subjects}
    assert models["bielik-7b-v0.1"][1] == "speakleash/Bielik-7B-Instruct-v0.1"
    assert models["bielik-11b-v2.3"][1] == "speakleash/Bielik-11B-v2.3-Instruct"
    assert models["qwen3.5-27b"][0] == "base" and models["slayer-v1"][2]
    assert {s.dtype for s in spec.config.subjects} == {"bfloat16"}  # matched settings
    gates = resolve_gates(spec.config.suite, spec.config.gates)
    assert {g.scorer for g in gates} == {"likelihood"} and {g.axis for g in gates} == {"pl_nlu"}
    bad = slayer("jobs", "example", "gate", "--for", "nowhere", home=home)
    assert bad.returncode == 2 and "rebaseline" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_deltas_vs_a_reference_is_the_baseline_table(home):
    base, v1, ref = subject("qwen", "base"), subject("slayer-v1", "reference"), subject("bielik-11b", "reference")
    store = Store.open(f"sqlite:///{home / 'slayer.db'}")
    b, better = flips(200, 120, 0, 30)
    ev = []
    for subj, psc, dyk in ((base, b, b), (v1, better, b), (ref, b, better)):
        ev += [gate_event(subj, "polish_psc", "pl_nlu", psc), gate_event(subj, "polish_dyk", "pl_nlu", dyk),
               gate_event(subj, "serve_c1", "latency", [5.0] * 4, metric="decode_tok_s")]
    ingest_events(store, "run-rebase", "rebaseline", ev)
    store.close()
    out = slayer("deltas", "rebaseline", "--vs", "bielik-11b", "--format", "json", home=home)
    assert out.returncode == 0, out.stderr
    table = json.loads(out.stdout)
    assert table["reference"] == "bielik-11b" and [g[0] for g in table["gates"]] == ["polish_dyk", "polish_psc"]
    rows = {name: (cells, avg) for name, _, cells, avg in table["rows"]}
    assert list(rows)[0] == "bielik-11b" and rows["bielik-11b"][0]["polish_dyk"]["value"] == 75.0
    assert rows["slayer-v1"][0]["polish_psc"]["delta"] == 15.0 and rows["slayer-v1"][0]["polish_dyk"]["delta"] == -15.0
    assert rows["qwen"][1] == 60.0 and rows["slayer-v1"][1] == 67.5
    text = slayer("deltas", "rebaseline", "--vs", "bielik-11b", "--format", "markdown", home=home).stdout
    assert "| slayer-v1 | reference | 60.0 (-15.0✗) | 75.0 (+15.0) | 67.5 |" in text
    missing = slayer("deltas", "rebaseline", "--vs", "bielik-7b", home=home)
    assert missing.returncode == 2 and "no subject 'bielik-7b'" in missing.stderr
