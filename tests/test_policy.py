"""The plan's locked rules as a policy: each rule names itself and the field; a recorded override lets a job through
(the card lists it, the run records it); `slayer run` refuses before anything launches, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from deltas_fixtures import flips, gate_event, ingest_events, subject
from test_data_klej import run_cli

from engine.policy import Policy, check

SFT = {"model": "tiny:qwen3", "adapter": {"method": "dora"}, "training": {"epochs": 1.0}, "gates": None}


def rules(config: dict, kind: str = "train.sft", policy: Policy = Policy()) -> list[tuple[str, str]]:
    return [(v.rule, v.field) for v in check(kind, config, policy)]


def test_each_locked_rule_names_itself_and_the_field(tmp_path):
    assert rules({**SFT, "data": str(tmp_path / "clean.jsonl")}) == []
    assert rules({**SFT, "adapter": {"method": "full"}}) == [("full_finetune", "adapter.method")]
    assert rules({**SFT, "tokenizer": {"add_tokens": ["<pl>"]}}) == [("tokenizer_extension", "tokenizer.add_tokens")]
    assert rules({**SFT, "training": {"epochs": 3.0}}) == [("epochs_without_gates", "training.epochs")]
    assert rules({**SFT, "training": {"epochs": 4.0}, "gates": {"suite": "core"}}) == []
    # A training file the guard found overlapping: by its own report, or by the report of the data job that wrote it.
    (tmp_path / "own.jsonl").write_text("{}\n")
    (tmp_path / "own_guard.json").write_text(json.dumps({"train": str(tmp_path / "own.jsonl"), "dropped": 2}))
    (tmp_path / "mix_report.json").write_text(json.dumps({"output": "train_v2_mix.jsonl"}))
    (tmp_path / "mix_report_guard.json").write_text(json.dumps({"dropped": 1}))
    assert rules({**SFT, "data": str(tmp_path / "own.jsonl")}) == [("guard_overlap", "data")]
    assert rules({**SFT, "data": str(tmp_path / "train_v2_mix.jsonl")}) == [("guard_overlap", "data")]
    (tmp_path / "mix_report_guard.json").write_text(json.dumps({"dropped": 0}))
    assert rules({**SFT, "data": str(tmp_path / "train_v2_mix.jsonl")}) == []
    # Teacher, judge and replay: the vendors' own models, or what the experiment marks as derived from them.
    assert rules({"teacher": {"model": "gpt-4o", "url": "http://127.0.0.1:1/v1"}}, "data.entigraph") == \
        [("closed_derived", "teacher.model")]
    assert rules({**SFT, "gates": {"judge": {"model": "x", "url": "https://api.anthropic.com/v1"}}}) == \
        [("closed_derived", "gates.judge.url")]
    marked = Policy(derived={"replay_v1.jsonl": "openai", "bielik-judge": "none"})
    assert rules({**SFT, "replay": "/data/replay_v1.jsonl"}, "train.cpt", marked) == [("closed_derived", "replay")]
    assert rules({"judge": {"model": "bielik-judge"}}, "gate", marked) == []
    overridden = Policy(override={"epochs_without_gates": "ablation"})
    assert rules({**SFT, "training": {"epochs": 3.0}}, policy=overridden) == []


def test_slayer_run_refuses_before_launch_and_an_override_lets_it_through(home, tmp_path, capsys):
    spec = tmp_path / "job.toml"
    spec.write_text('kind = "train.sft"\nexperiment = "pl"\nmodel = "tiny:qwen3"\ndata = "assets:examples/chat.jsonl"'
                    "\n[training]\nepochs = 4\n")
    code, _, err = run_cli(["run", str(spec), "--force"], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and "epochs_without_gates" in err and "'training.epochs'" in err
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
    (home / "experiments").mkdir()
    (home / "experiments" / "pl.toml").write_text('[policy.override]\nepochs_without_gates = "4-epoch ablation"\n')
    # The override lets the job launch, is said aloud, and is recorded on the run that proceeded under it.
    code, out, err = run_cli(["run", str(spec), "--force", "--detach"], capsys)
    line = "policy override: epochs_without_gates (field 'training.epochs'): 4-epoch ablation"
    assert code == 0 and line in err
    run_id = out.strip()
    try:
        code, shown, _ = run_cli(["runs", "show", run_id], capsys)
        assert code == 0 and line in shown
        code, shown, _ = run_cli(["runs", "show", run_id, "--format", "json"], capsys)
        assert json.loads(shown)["policy_overrides"] == [
            {"rule": "epochs_without_gates", "field": "training.epochs", "reason": "4-epoch ablation"}]
    finally:
        run_cli(["runs", "cancel", run_id], capsys)
    (home / "experiments" / "pl.toml").write_text('[policy.override]\nepochs_with_gates = "typo"\n')
    code, _, err = run_cli(["run", str(spec), "--force"], capsys)
    assert code == 2 and "pl.toml" in err and "'epochs_with_gates' is not a policy rule" in err


def test_the_card_lists_the_experiments_overrides(store_url, tmp_path):
    from store import Store
    from store.card import render_card
    from store.experiment_config import load_experiment_config

    store = Store.open(store_url)
    base, ckpt = subject("base", "base"), subject("ckpt-10", "checkpoint", adapter="outputs/ckpt-10")
    before, after = flips(50, 30, 0, 5)
    ingest_events(store, "run-gates", "pl", [gate_event(base, "pref", "pl_style", before),
                                             gate_event(ckpt, "pref", "pl_style", after)])
    path = tmp_path / "pl.toml"
    path.write_text('[policy.override]\nguard_overlap = "the overlap is a shared licence header"\n')
    card = render_card(store, "pl", config=load_experiment_config(path))
    assert "## Policy overrides" in card and "| guard_overlap | the overlap is a shared licence header |" in card
    assert "None recorded" in render_card(store, "pl", config=load_experiment_config(tmp_path / "absent.toml"))
    store.close()
