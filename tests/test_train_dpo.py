"""train.dpo: the reference is the base (the adapter disabled); ORPO runs reference-free and says so."""

from __future__ import annotations

from train_fixtures import of_type, run_in_process, tiny_model, write_jsonl

PAIRS = [{"prompt": f"Pytanie {i}: jak się masz?", "chosen": " Dobrze, dziękuję.", "rejected": " Źle."}
         for i in range(8)]


def test_dpo_reference_is_the_base_with_the_adapter_disabled(tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.train import dpo
    from engine.train.adapter import lora_config
    from engine.train.config import DPOJobConfig

    model_dir = tiny_model()
    data = str(write_jsonl(tmp_path / "pairs.jsonl", PAIRS))
    status, events = run_in_process(tmp_path / "run", "train.dpo", model=model_dir, data=data, beta=0.2,
                                    training={"max_steps": 2, "save_steps": 2})
    assert status == "succeeded", events[-1]
    ckpt = of_type(events, "checkpoint")[-1]
    assert ckpt["objective"] == "dpo" and ckpt["reference"] == "base (adapter disabled)" and ckpt["beta"] == 0.2
    assert {"rewards/margins", "loss"} <= {m["key"] for m in of_type(events, "metric")}

    # The trainer keeps no reference copy and no reference adapter: TRL scores the reference with
    # the adapter disabled.
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    cfg = DPOJobConfig(model=model_dir, data=data)
    trainer = dpo.build_trainer(cfg, None, model, tok, lora_config(model, cfg.adapter, "t"),
                                {"output_dir": str(tmp_path / "o"), "report_to": "none", "use_cpu": True}, [], "t")
    assert trainer.ref_model is None and list(trainer.model.peft_config) == ["default"]

    # …and with the adapter disabled, the trained model is exactly the base.
    ids = tok("Pytanie 3: jak się masz? Dobrze", return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), ckpt["path"]).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
        with trained.disable_adapter():
            disabled = trained(ids).logits
        enabled = trained(ids).logits
    assert torch.equal(disabled, base_logits)
    assert not torch.allclose(enabled, base_logits)


def test_orpo_is_recorded_as_reference_free(tmp_path):
    data = str(write_jsonl(tmp_path / "pairs.jsonl", PAIRS))
    status, events = run_in_process(tmp_path / "run", "train.dpo", model=tiny_model(), data=data,
                                    objective="orpo", training={"max_steps": 1, "save_steps": 1})
    assert status == "succeeded", events[-1]
    assert of_type(events, "checkpoint")[0]["reference"] == "none (ORPO is reference-free)"
