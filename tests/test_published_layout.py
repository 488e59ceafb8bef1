"""Qwen3.5's published checkpoint layout, end to end on a faithful miniature (model.tiny, layout = "published").

The miniature is `Qwen3_5ForConditionalGeneration` saved with `save_pretrained`: text weights under
`model.language_model.`, a vision tower under `model.visual.`, an MTP head under `mtp.`, bfloat16 shards
with an index, Qwen3.5's byte-level BPE pipeline and chat template. Every job runs its real path on it:
CPT (LoRA) → SFT (DoRA, stacked, gated on the hf backend) → DPO (DoRA, stacked), merge.sweep (scale,
TIES, DARE), export.gguf (F16 + Q8_0, verified), a gate on the GGUF (llama_cpp backend), the card.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_fixtures import chat_file, of_type, psc_file, run_in_process, write_jsonl

from engine.errors import SpecError
from engine.jobs import parse_spec
from engine.merge.layout import checkpoint_layout, detect
from engine.merge.shards import read_header, shard_files
from engine.runner import run_job
from engine.tiny.build import tiny_model_dir

TEXTS = ["Zażółć gęślą jaźń — Pchnąć w tę łódź jeża.", "Cena wynosi 49,99 zł; spotkanie o 10:30.", "a",
         "def f(x):\n    return x * 2  # I've been 'told he's there"]
PAIRS = [{"prompt": f"Pytanie {i}: jak się masz?", "chosen": " Dobrze, dziękuję.", "rejected": " Źle."}
         for i in range(8)]


@pytest.fixture(scope="module")
def published() -> Path:
    return tiny_model_dir("qwen3_5", layout="published")


def headers(model_dir: Path) -> dict[str, dict]:
    """shard file name → its header (names, dtypes, shapes, offsets)."""
    return {s.name: read_header(s)[1] for s in shard_files(model_dir)}


def assert_same_layout(merged: Path, base: Path) -> None:
    """Same index, shards, names, dtypes and shapes; the vision tower and MTP head byte for byte."""
    from engine.merge.shards import CheckpointReader

    assert (merged / "model.safetensors.index.json").read_text() == (base / "model.safetensors.index.json").read_text()
    assert headers(merged) == headers(base)
    before, after = CheckpointReader(base), CheckpointReader(merged)
    layout = checkpoint_layout(base)
    carried = [n for n in layout.stored if layout.part(n) != "text"]
    assert any(n.startswith("model.visual.") for n in carried) and any(n.startswith("mtp.") for n in carried)
    for name in carried:
        assert after.read(name).equal(before.read(name)), name


def test_miniature_has_the_released_structure(published):
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3_5ForConditionalGeneration
    from transformers.models.qwen3_5.tokenization_qwen3_5 import PRETOKENIZE_REGEX

    config = json.loads((published / "config.json").read_text())
    assert config["architectures"] == ["Qwen3_5ForConditionalGeneration"] and config["dtype"] == "bfloat16"
    assert config["text_config"]["mtp_num_hidden_layers"] == 1
    shards = headers(published)
    assert len(shards) >= 2 and (published / "model.safetensors.index.json").is_file()
    names = {n for h in shards.values() for n in h if n != "__metadata__"}
    assert {h[n]["dtype"] for h in shards.values() for n in h if n != "__metadata__"} == {"BF16"}
    assert "lm_head.weight" in names and "mtp.fc.weight" in names
    assert {n.split(".")[0] + "." + n.split(".")[1] for n in names} == {
        "model.language_model", "model.visual", "lm_head.weight", "mtp.layers", "mtp.fc", "mtp.norm",
        "mtp.pre_fc_norm_embedding", "mtp.pre_fc_norm_hidden"}

    full, info = Qwen3_5ForConditionalGeneration.from_pretrained(published, output_loading_info=True)
    assert not any(info.values())  # every stored weight but the MTP head (transformers ignores it) is used
    text, info = AutoModelForCausalLM.from_pretrained(published, output_loading_info=True)
    assert type(text).__name__ == "Qwen3_5ForCausalLM" and not info["missing_keys"]

    tok = AutoTokenizer.from_pretrained(published)
    pipeline = json.loads(tok.backend_tokenizer.to_str())
    split, byte_level = pipeline["pre_tokenizer"]["pretokenizers"]
    assert split["pattern"]["Regex"] == PRETOKENIZE_REGEX and byte_level["type"] == "ByteLevel"  # Qwen3.5's split
    assert pipeline["normalizer"]["type"] == "NFC" and pipeline["model"]["type"] == "BPE"
    assert tok.bos_token is None and tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert config["image_token_id"] == tok.convert_tokens_to_ids("<|image_pad|>")
    for t in TEXTS:
        assert tok.decode(tok.encode(t)) == t
    prompt = [{"role": "user", "content": "Ile to 2+2?"}]
    assert tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True).endswith(
        "<|im_start|>assistant\n<think>\n")
    assert tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True,
                                   enable_thinking=False).endswith("<think>\n\n</think>\n\n")


def test_one_mapping_knows_both_layouts_and_names_what_has_no_counterpart(published):
    pub = checkpoint_layout(published)
    causal = checkpoint_layout(tiny_model_dir("qwen3_5"))
    assert (pub.name, causal.name) == ("published", "causal_lm")
    name = "model.layers.0.linear_attn.in_proj_a.weight"
    assert pub.stored_name(name) == "model.language_model.layers.0.linear_attn.in_proj_a.weight"
    assert causal.stored_name(name) == name and pub.stored_name("lm_head.weight") == "lm_head.weight"
    assert pub.text_name(pub.stored_name(name)) == name and pub.text_name("mtp.fc.weight") is None
    with pytest.raises(SpecError, match=r"'model\.visual\.blocks\.0\.mlp\.weight', a weight of the vision tower, "
                                        r"which .* \(causal_lm layout\) does not have \(1 such weights\)"):
        causal.resolve(["model.visual.blocks.0.mlp.weight"], "A: the adapter changes")
    with pytest.raises(SpecError, match=r"'model\.layers\.9\.mlp\.up_proj\.weight', which .* does not have under "
                                        r"either name \(published layout"):
        pub.resolve([name, "model.layers.9.mlp.up_proj.weight"], "A: the adapter changes")
    assert detect(["model.embed_tokens.weight"]).name == "causal_lm"


def test_streamed_reference_is_the_float32_model(published):
    """export verification's HF side: block by block from the bf16 shards, probes in parts of a padded batch,
    yet exactly the float32 model on each probe alone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.export.layered import probe_logits

    tok = AutoTokenizer.from_pretrained(published)
    rows = [tok.encode(t, add_special_tokens=False) for t in TEXTS + [t[::-1] + " x" for t in TEXTS]]
    streamed = probe_logits(published, rows)  # 8 rows: two parts of PROBES_AT_ONCE
    model = AutoModelForCausalLM.from_pretrained(published, dtype=torch.float32).eval()
    with torch.no_grad():
        for row, got in zip(rows, streamed):
            want = model(torch.tensor([row])).logits[0]
            assert torch.allclose(torch.from_numpy(got), want, atol=1e-5)


@pytest.fixture(scope="module")
def chain(published, tmp_path_factory):
    """CPT (LoRA) → SFT (DoRA, gated on the hf backend) → DPO (DoRA) on the miniature, each stacked on the last."""
    tmp = tmp_path_factory.mktemp("chain")
    model = str(published)
    text = tmp / "knowledge.txt"
    text.write_text("\n\n".join(f"Dokument {i}. Kraków leży nad Wisłą, Gdańsk nad morzem." for i in range(12)))
    runs = {}
    status, events = run_in_process(tmp / "cpt", "train.cpt", model=model, data=str(text),
                                    adapter={"method": "lora", "rank": 4},
                                    training={"max_steps": 2, "save_steps": 2, "max_length": 32})
    assert status == "succeeded", events[-1]
    runs["cpt"] = events
    psc = str(psc_file(tmp / "psc.jsonl"))
    status, events = run_in_process(
        tmp / "sft", "train.sft", name="sft-pub", experiment="pub", model=model, data=str(chat_file(tmp / "c.jsonl")),
        base_adapter=str(tmp / "cpt" / "outputs" / "adapter"), adapter={"method": "dora", "rank": 4},
        training={"max_steps": 2, "save_steps": 2},
        gates={"gates": ["polish_psc"], "files": {"polish_psc": psc}, "limit": 4, "device": "cpu"})
    assert status == "succeeded", events[-1]
    runs["sft"] = events
    status, events = run_in_process(tmp / "dpo", "train.dpo", model=model, data=str(write_jsonl(tmp / "p.jsonl", PAIRS)),
                                    base_adapter=str(tmp / "sft" / "outputs" / "adapter"),
                                    adapter={"method": "dora", "rank": 4}, training={"max_steps": 1, "save_steps": 1})
    assert status == "succeeded", events[-1]
    runs["dpo"] = events
    return tmp, runs, psc


def test_training_stacks_and_gates_on_the_published_layout(published, chain):
    tmp, runs, _ = chain
    ckpt = of_type(runs["sft"], "checkpoint")[0]
    assert ckpt["stack"] == ["cpt", "sft"] and ckpt["adapter"]["method"] == "dora"
    assert ckpt["adapter"]["targets"]["in_proj_qkv"] >= 1  # the linear-attention projections are trained too
    gated = {(g["subject"]["kind"], g["gate"]) for g in of_type(runs["sft"], "gate_result")}
    assert gated == {("base", "polish_psc"), ("checkpoint", "polish_psc")}
    assert of_type(runs["dpo"], "checkpoint")[0]["stack"] == ["cpt", "sft", "dpo"]
    # each stacked base is the published layout merged in place: same shards, names, bf16, vision tower, MTP
    sft_base = tmp / "sft" / "outputs" / "stack_base"
    assert_same_layout(sft_base, published)
    assert_same_layout(tmp / "dpo" / "outputs" / "stack_base", published)
    assert json.loads((sft_base / "slayer_merge.json").read_text())["weights_changed"] > 0


def test_merge_sweep_candidates_keep_the_layout(published, chain):
    from transformers import Qwen3_5ForConditionalGeneration

    tmp, _, psc = chain
    adapter = tmp / "sft" / "outputs" / "adapter"
    base = tmp / "sft" / "outputs" / "stack_base"
    spec = parse_spec({
        "kind": "merge.sweep", "model": str(base), "adapter": str(adapter), "scales": [0.5],
        "variants": [{"method": "ties", "density": 0.5}, {"method": "dare_linear", "density": 0.5, "seed": 3}],
        "gate": {"suite": "", "gates": ["polish_psc"], "files": {"polish_psc": psc}, "limit": 4},
    }, "test")
    run = tmp / "sweep"
    assert run_job(spec, run) == "succeeded", (run / "events.jsonl").read_text()[-2000:]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert len(of_type(events, "gate_result")) == 3
    for folder in ("ties-d0.5", "dare_linear-d0.5-seed-3"):
        merged = run / "outputs" / "merges" / folder
        assert_same_layout(merged, base)
        model, info = Qwen3_5ForConditionalGeneration.from_pretrained(merged, output_loading_info=True)
        assert not any(info.values()) and str(model.dtype) == "torch.bfloat16"


def test_export_verify_gate_and_card_on_the_published_layout(published, chain, tmp_path):
    pytest.importorskip("llama_cpp")
    from store import Store
    from store.card import render_card
    from store.ingest import ingest_run_dir

    tmp, _, psc = chain
    spec = parse_spec({"kind": "export.gguf", "name": "pub-gguf", "experiment": "pub",
                       "model": str(tmp / "sft" / "outputs" / "stack_base"),
                       "adapter": str(tmp / "sft" / "outputs" / "adapter"), "quants": ["Q8_0"], "file_stem": "pub",
                       "merge": {"method": "ties", "density": 0.5}}, "test")
    run = tmp_path / "export"
    assert run_job(spec, run) == "succeeded", (run / "events.jsonl").read_text()[-2000:]
    ggufs = {e["quant"]: e for e in of_type([json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()],
                                            "artifact") if e["kind"] == "gguf"}
    f16, q8 = ggufs["F16"], ggufs["Q8_0"]
    assert f16["kl"] < 1e-4 and f16["top1"] > 0.98 and f16["kl"] < q8["kl"] < 1e-2
    assert f16["verification"]["tokenizer_match"] == 1.0  # the declared pre-tokenizer tokenizes as HF does
    report = json.loads((run / "outputs" / "gguf" / "verify.json").read_text())
    assert report["conversion"] == {"args": [], "mtp_layers": 1, "mtp_in_gguf": True,
                                    "pre_tokenizer": {"pre_tokenizer": "qwen35", "hash_recognised": False}}
    assert_same_layout(run / "outputs" / "merged", tmp / "sft" / "outputs" / "stack_base")

    gate = parse_spec({"kind": "gate", "experiment": "pub", "suite": "", "gates": ["polish_psc"],
                       "files": {"polish_psc": psc}, "limit": 4,
                       "subjects": [{"name": "pub Q8_0", "kind": "quant", "backend": "llama_cpp",
                                     "file": str((run / q8["path"]).resolve())}]}, "test")
    assert run_job(gate, tmp_path / "gate") == "succeeded", (tmp_path / "gate" / "events.jsonl").read_text()[-2000:]

    store = Store.open(f"sqlite:///{tmp_path / 'slayer.db'}")
    for run_dir in (tmp / "sft", run, tmp_path / "gate"):
        ingest_run_dir(store, run_dir, experiment="pub")
    card = render_card(store, "pub", subject=q8["subject"]["id"])  # the card of the shipped Q8_0 file
    assert "pub-Q8_0.gguf" in card and "polish_psc" in card
    store.close()


def test_lora_gguf_of_the_published_layout_matches_the_merged_model(published, chain, tmp_path):
    """llama.cpp applies a plain-LoRA GGUF (here the CPT adapter) to the text GGUF of the published base."""
    pytest.importorskip("llama_cpp")
    tmp, _, _ = chain
    spec = parse_spec({"kind": "export.gguf", "model": str(published), "adapter": str(tmp / "cpt" / "outputs" / "adapter"),
                       "scale": 0.5, "quants": [], "lora_gguf": True, "file_stem": "pub"}, "test")
    run = tmp_path / "export"
    assert run_job(spec, run) == "succeeded", (run / "events.jsonl").read_text()[-2000:]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    (lora,) = [e for e in of_type(events, "artifact") if e["kind"] == "gguf_lora"]
    assert lora["kl"] < 1e-4 and lora["lora_scale"] == 0.5
