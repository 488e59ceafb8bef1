"""train.sft on the tiny model: assistant-only labels, target layers, and a run whose every checkpoint is gated."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.train.config import AdapterConfig
from train_fixtures import ANSWERS, chat_file, of_type, psc_file, run_in_process, tiny_model


def test_loss_is_on_assistant_tokens_only(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.train import sft
    from engine.train.adapter import lora_config
    from engine.train.config import SFTJobConfig

    model_dir = tiny_model()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    cfg = SFTJobConfig(model=model_dir, data=str(chat_file(tmp_path / "chat.jsonl", n=6)))
    trainer = sft.build_trainer(cfg, None, model, tok, lora_config(model, cfg.adapter, "t"),
                                {"output_dir": str(tmp_path / "out"), "report_to": "none", "use_cpu": True}, [], "t")
    for i, row in enumerate(trainer.train_dataset):
        ids, labels = row["input_ids"], row["labels"]
        learned = [t for t, label in zip(ids, labels) if label != -100]
        assert all(label in (-100, t) for t, label in zip(ids, labels))
        # Everything before the answer (the user turn, the assistant header) is masked; the answer and its
        # end-of-turn marker are learned; the newline after the marker is not.
        assert tok.decode(learned) == ANSWERS[i] + "<|im_end|>"
        first = labels.index(next(label for label in labels if label != -100))
        assert "user" in tok.decode(ids[:first]) and tok.decode(ids[:first]).endswith("assistant\n")
        assert labels[-1] == -100


def test_default_targets_every_linear_layer_but_embeddings_and_head():
    import torch
    from transformers import AutoModelForCausalLM

    from engine.tiny.build import tiny_model_dir
    from engine.train.adapter import target_modules

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch="qwen3_5", seed=0))
    names = target_modules(model, AdapterConfig(), "t")
    linear = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert set(names) == linear - {"lm_head"}
    leaves = {n.rsplit(".", 1)[-1] for n in names}
    assert {"in_proj_qkv", "in_proj_z", "in_proj_a", "in_proj_b", "out_proj", "q_proj", "down_proj"} <= leaves
    only_attn = target_modules(model, AdapterConfig(include=["linear_attn"], exclude=["out_proj"]), "t")
    assert only_attn and all(".linear_attn." in n and not n.endswith("out_proj") for n in only_attn)
    with pytest.raises(SpecError, match="adapter.include 'qproj' matches no linear layer"):
        target_modules(model, AdapterConfig(include=["qproj"]), "t")


def test_4bit_without_cuda_fails_with_one_line(tmp_path):
    status, events = run_in_process(tmp_path / "run", "train.sft", model=tiny_model(),
                                    data=str(chat_file(tmp_path / "chat.jsonl")), quantization="4bit")
    assert status == "failed"
    error = events[-1]["error"]
    assert "\n" not in error and error.startswith(str(tmp_path / "run" / "job.toml"))
    assert 'quantization = "4bit"' in error and "needs a CUDA GPU" in error


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory):
    """DoRA + rsLoRA, 4 steps, a checkpoint every 2: two checkpoints, each gated by its own gate job."""
    tmp = tmp_path_factory.mktemp("sft")
    run_dir = tmp / "run"
    status, events = run_in_process(
        run_dir, "train.sft", name="sft-gated", experiment="exp-sft", model=tiny_model(),
        data=str(chat_file(tmp / "chat.jsonl")),
        adapter={"method": "dora", "rank": 8, "use_rslora": True},
        training={"max_steps": 4, "save_steps": 2},
        gates={"gates": ["polish_psc"], "files": {"polish_psc": str(psc_file(tmp / "psc.jsonl"))}, "limit": 8,
               "device": "cpu", "max_parallel": 2})
    assert status == "succeeded", events[-1]
    return run_dir, events


def test_every_checkpoint_is_a_gated_subject_with_a_delta_row(gated_run, tmp_path):
    from store import Store
    from store.deltas import delta_table
    from store.ingest import ingest_run_dir

    run_dir, events = gated_run
    ckpts = of_type(events, "checkpoint")
    assert [c["step"] for c in ckpts] == [2, 4]
    for c in ckpts:
        assert c["subject"]["kind"] == "checkpoint" and c["subject"]["recipe"]["adapter"] == c["path"]
        assert c["adapter"]["method"] == "dora" and c["adapter"]["use_rslora"] and c["adapter"]["rank"] == 8
        assert Path(c["path"], "adapter_model.safetensors").is_file()
    gated = {(g["subject"]["id"], g["gate"]) for g in of_type(events, "gate_result")}
    assert {(c["subject"]["id"], "polish_psc") for c in ckpts} <= gated
    assert any(g["subject"]["kind"] == "base" for g in of_type(events, "gate_result"))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    store = Store.open(f"sqlite:///{tmp_path / 'slayer.db'}")
    ingest_run_dir(store, run_dir)
    table = delta_table(store, "exp-sft")
    rows = {r.subject_id: r for r in table.rows}
    for c in ckpts:
        cell = rows[c["subject"]["id"]].cells["polish_psc"]
        assert cell.verdict in ("PASS", "UNDERPOWERED", "WARN", "FAIL") and cell.n == 8


def test_metrics_progress_and_the_adapter_left_out_embeddings_and_head(gated_run):
    import json

    from safetensors import safe_open

    run_dir, events = gated_run
    keys = {m["key"] for m in of_type(events, "metric")}
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= keys
    assert of_type(events, "progress")[-1]["done"] == 4
    adapter = run_dir / "outputs" / "adapter"
    targets = json.loads((adapter / "adapter_config.json").read_text())["target_modules"]
    assert targets and not any("embed_tokens" in t or "lm_head" in t for t in targets)
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        assert not any("embed_tokens" in k or "lm_head" in k for k in f.keys())
        assert any("lora_magnitude_vector" in k for k in f.keys())  # DoRA
    assert json.loads((adapter / "slayer_adapter.json").read_text())["stack"] == ["sft"]


def test_gates_that_cannot_run_are_refused_before_training(tmp_path):
    status, events = run_in_process(tmp_path / "run", "train.sft", model=tiny_model(),
                                    data=str(chat_file(tmp_path / "chat.jsonl")), gates={"suite": "core"})
    assert status == "failed" and not of_type(events, "progress")
    assert "gate mbpp runs model-generated code: set allow_code_exec = true in [gates]" in events[-1]["error"]
