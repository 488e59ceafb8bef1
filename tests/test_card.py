"""The model card renders from a store filled by ingest, its front matter round-trips; the CLI's exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from deltas_fixtures import flips, gate_event, ingest_events, subject

from store import Store
from store.card import front_matter, render_card, render_card_files
from store.decisions import decide, decisions_for

ROOT = Path(__file__).resolve().parents[1]
BASE, REF = subject("Qwen-base", "base"), subject("bielik", "reference")
CKPT = subject("ckpt-1600", "checkpoint", adapter="outputs/ckpt-1600")
MERGE = subject("ckpt-1600 x0.5", "merge", adapter="outputs/ckpt-1600", scale=0.5,
                merge={"method": "dare_ties", "density": 0.3, "seed": 7})


def _fill(store, tmp_path: Path) -> None:
    """A small experiment: a training run with job.toml and a data report, gates, a GGUF export."""
    train_dir = tmp_path / "run-train"
    (train_dir / "outputs").mkdir(parents=True)
    mix = train_dir / "outputs" / "mix.jsonl"
    (train_dir / "job.toml").write_text(f'kind = "train.sft"\nexperiment = "pl"\ndata = "{mix}"\nlr = 0.0002\n'
                                        '[adapter]\nmethod = "dora"\nrank = 16\n')
    (train_dir / "outputs" / "mix.json").write_text(json.dumps({"ratios": {"style": 0.6, "replay": 0.4}, "rows": 1200}))
    (train_dir / "outputs" / "guard.json").write_text(json.dumps({"checked": 1200, "dropped": 3, "gates": [
        {"name": "gsm8k", "overlap": 3}], "summary": ["gsm8k: 3 overlap"]}))
    ingest_events(store, "run-train", "pl", [
        {"type": "artifact", "path": "outputs/mix.jsonl", "kind": "data", "sha256": "aa" * 32, "bytes": 900},
        {"type": "artifact", "path": "outputs/mix.json", "kind": "data_report", "sha256": "ab" * 32, "bytes": 50},
        {"type": "artifact", "path": "outputs/guard.json", "kind": "guard_report", "sha256": "cd" * 32, "bytes": 40},
        {"type": "checkpoint", "step": 1600, "path": "outputs/ckpt-1600", "subject": CKPT},
        {"type": "metric", "key": "cost_usd", "step": 1600, "value": 3.5}], kind="train.sft", run_dir=str(train_dir))
    gsm_b, gsm_c = flips(100, 80, 2, 3)
    style_b, style_c = flips(100, 40, 0, 15)
    ev = []
    for subj, gsm, style in ((BASE, gsm_b, style_b), (REF, gsm_b, flips(100, 40, 0, 5)[1]), (CKPT, gsm_c, style_c),
                             (MERGE, gsm_b, flips(100, 40, 0, 8)[1])):
        ev += [gate_event(subj, "gsm8k", "math", gsm), gate_event(subj, "pref", "pl_style", style)]
    ingest_events(store, "run-gates", "pl", ev)
    ingest_events(store, "run-export", "pl", [
        {"type": "artifact", "path": "outputs/m-Q8_0.gguf", "kind": "gguf", "sha256": "ef" * 32, "bytes": 3 * 2**20,
         "quant": "Q8_0", "kl": 0.0004, "top1": 0.991, "source": {**CKPT["recipe"]}}], kind="export.gguf")


@pytest.fixture
def store(store_url, tmp_path):
    s = Store.open(store_url)
    _fill(s, tmp_path)
    yield s
    s.close()


def test_card_renders_from_the_store_and_its_front_matter_round_trips(store):
    decide(store, "ckpt-1600", "accept", "best style gain, no general regression", actor="ana@gb10")
    card, appendix = render_card_files(store, "pl")
    assert card == render_card(store, "pl")
    fm = front_matter(card)
    assert yaml.safe_load(yaml.safe_dump(fm)) == fm
    assert fm["base_model"] == "tiny"
    (entry,) = fm["model-index"]
    assert entry["name"] == "ckpt-1600"  # the accepted subject
    values = {r["dataset"]["name"]: r["metrics"][0]["value"] for r in entry["results"]}
    assert values == {"pref": 0.55, "gsm8k": 0.81}
    body = card[card.index("\n---", 3) + 4:]
    assert len(body.splitlines()) <= 200
    for text in ("## Summary", "vs **Qwen-base**: **UNDERPOWERED**", "vs **bielik**", "accept** by ana@gb10",
                 "best style gain", "| m-Q8_0.gguf | Q8_0 | 3.0 MiB | `" + "ef" * 32 + "` | 0.0004 | 0.991 |",
                 "**Data mix** `mix.jsonl` (run `run-train`", "style 60%, replay 40%",
                 "**Training** run `run-train` (`train.sft`): method dora, rank 16",
                 "**Checkpoint** `outputs/ckpt-1600` (step 1600)", "**GGUF** m-Q8_0.gguf", "| Style | +15.0 ✓ PASS (1 gate, n=100)",
                 "| Math |", "1200 training examples checked against 1 gates' test items, 3 dropped", "appendix"):
        assert text in card, text
    for text in ("## Deltas vs the base", "## Deltas vs bielik (reference)", "#### Style", "#### Math", "+15.0",
                 "lr = 0.0002", '"replay": 0.4', '"dropped": 3', "ana@gb10", "## Fingerprints", "## Cost per run"):
        assert text in appendix, text


def test_card_of_a_merge_shows_its_recipe_and_its_adapters_training_run(store):
    card, appendix = render_card_files(store, "pl", subject="ckpt-1600 x0.5")
    assert "**Merge** scale 0.5, dare_ties density 0.3" in card and '"method": "dare_ties"' in appendix
    assert "From run `run-train`" in appendix and front_matter(card)["model-index"][0]["name"] == "ckpt-1600 x0.5"


def slayer(*args, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLAYER_HOME": str(home), "COLUMNS": "200"}  # SLAYER_DB, where set, picks the store
    return subprocess.run([sys.executable, "-m", "slayer_console", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_cli_deltas_select_decide_card(home, tmp_path, store_url, monkeypatch):
    monkeypatch.setenv("SLAYER_DB", store_url)
    store = Store.open(store_url)
    _fill(store, tmp_path)
    bad = subject("ckpt-2400", "checkpoint", adapter="outputs/ckpt-2400")
    ingest_events(store, "run-gates-2", "pl", [gate_event(bad, "gsm8k", "math", flips(100, 80, 20, 0)[1]),
                                               gate_event(bad, "pref", "pl_style", flips(100, 40, 0, 30)[1])])
    store.close()
    out = slayer("deltas", "pl", "--format", "json", home=home)
    assert out.returncode == 0, out.stderr
    table = json.loads(out.stdout)
    assert [r["name"] for r in table["rows"]][0] == "Qwen-base"
    assert slayer("deltas", "pl", "--format", "markdown", home=home).stdout.startswith("| subject |")
    assert "ckpt-2400" in slayer("deltas", "pl", home=home).stdout
    picked = json.loads(slayer("select", "pl", "--format", "json", home=home).stdout)
    assert picked["best"] == CKPT["id"] and picked["ranked"][-1]["verdict"] == "FAIL"
    assert "★ ckpt-1600" in slayer("select", "pl", "--lambda", "2", home=home).stdout

    refused = slayer("decide", "ckpt-2400", "accept", "--reason", "more style", home=home)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "--override" in refused.stderr
    ok = slayer("decide", "ckpt-2400", "accept", "--override", "--reason", "override: gsm8k judged noise", home=home)
    assert ok.returncode == 0 and "(override)" in ok.stdout, ok.stderr

    card_path = tmp_path / "cards" / "CARD.md"
    made = slayer("card", "pl", "--out", str(card_path), home=home)
    assert made.returncode == 0, made.stderr
    text = card_path.read_text()
    assert front_matter(text)["model-index"][0]["name"] == "ckpt-2400" and "(override)" in text
    assert "(CARD.appendix.md)" in text and "## Fingerprints" in (tmp_path / "cards" / "CARD.appendix.md").read_text()
    assert sorted(p.name for p in card_path.parent.iterdir()) == ["CARD.appendix.md", "CARD.md"]  # no temp files

    for args, message in ((["deltas", "nope"], "no such experiment"),
                          (["card", "pl", "--subject", "zzz", "--out", str(tmp_path / "x.md")], "no subject 'zzz'")):
        proc = slayer(*args, home=home)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "x.md").exists()


def test_the_objective_comes_from_the_experiments_config(home, tmp_path):
    """score = Σ weight · mean axis gain − λ · max(0, regression): weights and λ in experiments/NAME.toml reach
    `select`, `deltas` and the card; a weight for an unknown axis is one line naming the known axes, exit 2."""
    store = Store.open(f"sqlite:///{home / 'slayer.db'}")
    _fill(store, tmp_path)
    nlu = subject("ckpt-nlu", "checkpoint", adapter="outputs/ckpt-nlu")  # no style gain, a big KLEJ gain
    base_psc, nlu_psc = flips(100, 50, 0, 30)
    ingest_events(store, "run-nlu", "pl", [gate_event(BASE, "polish_psc", "pl_nlu", base_psc),
                                           gate_event(nlu, "polish_psc", "pl_nlu", nlu_psc),
                                           gate_event(nlu, "pref", "pl_style", flips(100, 40, 0, 0)[1]),
                                           gate_event(nlu, "gsm8k", "math", flips(100, 80, 1, 1)[1])])
    picked = json.loads(slayer("select", "pl", "--format", "json", home=home).stdout)
    assert picked["weights"] == {"pl_style": 1.0, "pl_nlu": 1.0} and picked["best"] == nlu["id"]  # +30 NLU
    row = next(r for r in picked["ranked"] if r["name"] == "ckpt-nlu")
    assert row["score"] == pytest.approx(row["axis_gains_pp"]["pl_nlu"] - max(0.0, row["worst_regression_pp"]))
    (home / "experiments").mkdir()
    config = home / "experiments" / "pl.toml"
    config.write_text("[objective]\nlambda = 2.0\n[objective.weights]\npl_nlu = 0.1\n")
    picked = json.loads(slayer("select", "pl", "--format", "json", home=home).stdout)
    assert picked["lambda"] == 2.0 and picked["best"] == CKPT["id"]  # style wins once KLEJ weighs 0.1
    assert "score = pl_style + 0.1·pl_nlu − 2·max(0, regression)" in slayer("deltas", "pl", home=home).stdout
    card = tmp_path / "card.md"
    assert slayer("card", "pl", "--out", str(card), home=home).returncode == 0
    assert "= pl_style + 0.1·pl_nlu − 2·max(0, regression)" in card.read_text()
    assert "#### Axis verdicts" in (tmp_path / "card.appendix.md").read_text()  # the card has the pooled axes
    assert slayer("decide", "ckpt-nlu", "reject", "--reason", "KLEJ only", home=home).returncode == 0
    (snapshot,) = [d.snapshot for d in decisions_for(store, "pl") if d.name == "ckpt-nlu"]
    assert snapshot["lambda"] == 2.0  # the decision was judged under the experiment's objective

    config.write_text("[objective.weights]\nklej = 1.0\n")
    bad = slayer("select", "pl", home=home)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and bad.stdout == ""
    assert "'klej' is not an axis (known: pl_nlu, pl_style" in bad.stderr and "pl.toml" in bad.stderr


def test_gates_power_says_how_many_items_see_the_tolerance(home, tmp_path):
    out = json.loads(slayer("gates", "--power", "--tolerance", "0.5", "--format", "json", home=home).stdout)
    gsm = next(g for g in out["gates"] if g["gate"] == "gsm8k")
    # Connor: (z_.975 + z_.8)² · ψ / δ² = 7.849 · 0.1 / 0.005² — a 500-item gate is far from it
    assert gsm["needed"] == 31396 and gsm["n"] == 500 and gsm["enough"] is False
    assert {a["axis"] for a in out["axes"]} >= {"math", "pl_nlu", "en_knowledge"}
    # measured on an experiment: the pooled axis needs n · (detectable / tolerance)² items
    store = Store.open(f"sqlite:///{home / 'slayer.db'}")
    _fill(store, tmp_path)
    out = json.loads(slayer("gates", "--power", "--tolerance", "1", "--experiment", "pl", "--format", "json",
                            home=home).stdout)
    math_axis = next(a for a in out["axes"] if a["axis"] == "math")
    assert math_axis["source"] == "measured" and math_axis["n"] == 100 and math_axis["needed"] > 100
    assert math_axis["enough"] is False
    text = slayer("gates", "--power", home=home).stdout
    assert "UNDERPOWERED" in text and "per axis" in text
