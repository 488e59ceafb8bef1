"""`slayer demo --fast` end to end: the README's first command, into a fresh store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from store import Store
from slayer_console.context import Settings
from slayer_console.demo import next_experiment, outcome
from store.decisions import decisions_for, find_subject
from store.deltas import delta_table
from store.queries import list_experiments, list_runs

ROOT = Path(__file__).resolve().parents[1]


def test_demo_fast_runs_the_whole_campaign_into_the_store(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "SLAYER_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "slayer_console", "demo", "--fast"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    store = Store.open(str(home / "slayer.db"))
    runs = list_runs(store, "demo")
    assert {r.status for r in runs} == {"succeeded"}
    kinds = {r.kind for r in runs}
    assert {"model.tiny", "demo.pretrain", "data.klej", "data.replay", "data.mix", "train.sft", "merge.sweep",
            "export.gguf", "bench.serve"} <= kinds
    table = delta_table(store, "demo")
    checkpoints = [r for r in table.rows if r.kind == "checkpoint"]
    assert len([r for r in checkpoints if "no-replay" in r.name]) >= 3
    assert len([r for r in checkpoints if "-replay-" in r.name and "no-replay" not in r.name]) >= 3
    assert any(r.kind == "merge" for r in table.rows)
    # every checkpoint was gated on every demo gate, compared with the base on matching fingerprints
    assert all(c.verdict != "MISMATCH" and c.delta_pp is not None for r in checkpoints for c in r.cells.values()
               if c.axis != "latency")
    [decision] = decisions_for(store, "demo")
    assert decision.verdict == "accept" and decision.reason.startswith("demo: Pareto-best")
    # merge candidates carry their parent checkpoint's name; the accepted one is what was exported
    merges = [r.name for r in table.rows if r.kind == "merge"]
    assert merges and all(re.fullmatch(r"sft-(no-)?replay-ckpt-\d+ ×0\.[35]", n) for n in merges), merges
    [export] = [r for r in runs if r.kind == "export.gguf" and r.name == "gguf-accepted"]
    exported = tomllib.loads((Path(export.run_dir) / "job.toml").read_text())
    accepted = find_subject(store, decision.subject_id, "demo")[1].recipe
    assert (exported["adapter"], exported.get("scale", 1.0)) == (accepted["adapter"], accepted["scale"])
    # the story at seed 0 (docs/demo.md): without replay a general axis FAILs; the protocol's pick PASSes every
    # general axis with a style gain and a KLEJ gain, so it is accepted without an override
    told = outcome(Settings.create(str(home)), "demo")
    assert told["no_replay_failed_axes"], told
    assert told["pick"] == decision.name and set(told["pick_general"].values()) == {"PASS"}, told
    assert told["style_gain_pp"] > 0 and told["klej_gain_pp"] > 0 and told["shown"], told
    assert "override" not in decision.reason
    card = (home / "demo" / "MODEL_CARD.md").read_text()
    assert card.startswith("---\n") and "model-index" in card and "Q8_0" in card
    body = card[card.index("\n---", 3) + 4:]
    assert len(body.splitlines()) <= 200 and (home / "demo" / "MODEL_CARD.appendix.md").is_file()
    serving = body[body.index("## Latency and cost"):]
    assert "| base Q8_0 | base | 4 |" in serving and f"| {decision.name} Q8_0 | quant | 4 |" in serving
    assert "delta" in proc.stdout.lower() and "slayer --home" in proc.stdout
    # a second demo would go to a new experiment, never into this one
    assert next_experiment(Settings.create(str(home))) == "demo-2"
    assert list_experiments(store) == ["demo"]
