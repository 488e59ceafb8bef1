"""Checkpoint gating modes: in the training process (no second copy) scores exactly as a gate job does; the base is
scored once per experiment and reused; loading options a machine cannot honour are one line."""

from __future__ import annotations

import pytest
from train_fixtures import chat_file, of_type, psc_file, run_in_process, tiny_model

from engine.errors import SpecError


def _train(tmp, run, mode: str, experiment: str, steps: int = 4, **objective) -> list[dict]:
    tmp.mkdir(parents=True, exist_ok=True)
    chat, psc = tmp / "chat.jsonl", tmp / "psc.jsonl"
    if not chat.exists():
        chat_file(chat), psc_file(psc)
    status, events = run_in_process(
        tmp / run, "train.sft", name="sft", experiment=experiment, model=tiny_model(), data=str(chat), **objective,
        adapter={"method": "dora", "rank": 8, "use_rslora": True}, training={"max_steps": steps, "save_steps": 2},
        gates={"gates": ["polish_psc"], "files": {"polish_psc": str(psc)}, "limit": 8, "device": "cpu",
               "mode": mode, "max_parallel": 2})
    assert status == "succeeded", events[-1]
    return events


def _by_subject(events: list[dict]) -> dict:
    return {(g["subject"]["name"], g["gate"]): g for g in of_type(events, "gate_result")}


def test_in_process_gating_scores_exactly_as_separate_gate_jobs(tmp_path):
    # kl_to_base is part of each checkpoint's recipe: the gate job must record the checkpoint's own subject too
    in_process = _train(tmp_path / "a", "run", "in_process", "exp-a", kl_to_base=1.0)
    separate = _train(tmp_path / "b", "run", "process", "exp-b", kl_to_base=1.0)
    assert [c["step"] for c in of_type(in_process, "checkpoint")] == [2, 4]
    for events in (in_process, separate):
        gated = {g["subject"]["id"] for g in of_type(events, "gate_result") if g["subject"]["kind"] == "checkpoint"}
        assert gated == {c["subject"]["id"] for c in of_type(events, "checkpoint")}
    ours, theirs = _by_subject(in_process), _by_subject(separate)
    assert set(ours) == set(theirs) == {("base", "polish_psc"), ("sft-ckpt-2", "polish_psc"),
                                        ("sft-ckpt-4", "polish_psc")}
    for key, g in ours.items():
        assert g["fingerprint"] == theirs[key]["fingerprint"], key
        assert g["outcomes"] == theirs[key]["outcomes"] and g["metrics"] == pytest.approx(theirs[key]["metrics"]), key
    # the training itself is unchanged by gating in its process (same losses as with the gates elsewhere)
    losses = lambda events: [m["value"] for m in of_type(events, "metric") if m["key"] == "loss"]  # noqa: E731
    assert losses(in_process) == pytest.approx(losses(separate))


def test_the_base_is_scored_once_per_experiment_and_reused(tmp_path):
    first = _train(tmp_path, "first", "in_process", "exp", steps=2)
    second = _train(tmp_path, "second", "in_process", "exp", steps=2)
    base_first = [g for g in of_type(first, "gate_result") if g["subject"]["kind"] == "base"]
    base_second = [g for g in of_type(second, "gate_result") if g["subject"]["kind"] == "base"]
    assert len(base_first) == len(base_second) == 1
    assert base_second[0]["outcomes"] == base_first[0]["outcomes"]
    assert any("come from an earlier run of this experiment" in e["message"] for e in of_type(second, "log"))
    assert not any("base · polish_psc" in e["message"] for e in of_type(second, "log"))  # not scored again
    other = _train(tmp_path, "other", "in_process", "another-exp", steps=2)
    assert any("base · polish_psc" in e["message"] for e in of_type(other, "log"))


def test_in_process_gating_refuses_a_model_sharded_over_processes():
    from engine.train.config import SFTJobConfig
    from engine.train.gating import choose_mode

    cfg = SFTJobConfig(model="m", data="d", launcher="accelerate", num_processes=2, distributed="fsdp",
                       gates={"gates": ["polish_psc"], "mode": "in_process"})
    with pytest.raises(SpecError, match='mode = "in_process" cannot score a model FSDP shards over 2 processes'):
        choose_mode(cfg, "job.toml")


def test_a_4bit_gate_on_cpu_is_one_line_before_anything_loads(tmp_path):
    from engine.jobs import parse_spec
    from engine.runner import run_job
    from train_fixtures import read_events

    spec = parse_spec({"kind": "gate", "gates": ["polish_psc"], "files": {"polish_psc": str(psc_file(tmp_path / "p"))},
                       "device": "cpu", "subjects": [{"name": "base", "model": tiny_model(), "quantization": "4bit"}]},
                      "gate.toml")
    assert run_job(spec, tmp_path / "run") == "failed"
    error = read_events(tmp_path / "run")[-1]["error"]
    assert "\n" not in error and 'subject base: quantization = "4bit"' in error and "needs a CUDA GPU" in error
