"""`slayer demo --fast` end to end: the README's first command, into a fresh store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from store import Store
from store.decisions import decisions_for
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
    card = (home / "demo" / "MODEL_CARD.md").read_text()
    assert card.startswith("---\n") and "model-index" in card and "Q8_0" in card
    body = card[card.index("\n---", 3) + 4:]
    assert len(body.splitlines()) <= 200 and (home / "demo" / "MODEL_CARD.appendix.md").is_file()
    serving = body[body.index("## Latency and cost"):]
    assert "| base Q8_0 | base | 4 |" in serving and f"| {decision.name} Q8_0 | quant | 4 |" in serving
    assert "delta" in proc.stdout.lower() and "slayer --home" in proc.stdout
    # a second demo would go to a new experiment, never into this one
    from slayer_console.context import Settings
    from slayer_console.demo import next_experiment

    assert next_experiment(Settings.create(str(home))) == "demo-2"
    assert list_experiments(store) == ["demo"]
