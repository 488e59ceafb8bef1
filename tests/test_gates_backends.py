"""Backends score what a plain forward pass scores: Qwen3.5's cached path, adapters at a scale, GGUF vs HF."""

import json
from pathlib import Path

import pytest

from engine.gates import load_gate, run_gates
from engine.gates.backend import SubjectSpec
from engine.gates.data import load_items
from engine.gates.likelihood import encode_item
from engine.tiny.build import tiny_model_dir

DATA = Path(__file__).parent / "data" / "gates"


def plain_lls(model, tokenizer, gate_name: str, file: str, limit: int) -> list[list[float]]:
    """Reference: each choice scored by one uncached, unbatched forward over context + continuation."""
    import torch

    gate = load_gate(gate_name)
    items = load_items(gate, file, limit)
    out = []
    for prompt, row in zip(items.prompts(), items.rows):
        ctx, conts = encode_item(prompt, [" " + c for c in gate.choices_for(row)],
                                 lambda t: tokenizer.encode(t, add_special_tokens=False))
        scores = []
        for cont in conts:
            with torch.no_grad():
                logp = model(torch.tensor([ctx + cont[:-1]])).logits[0].float().log_softmax(-1)
            scores.append(sum(float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont)))
        out.append(scores)
    return out


def harness_lls(tmp_path, subject: SubjectSpec, gate_name: str, file: str, limit: int) -> list[list[float]]:
    samples = tmp_path / f"{subject.name}.jsonl"
    run_gates([subject], [load_gate(gate_name)], tmp_path / subject.name, files={gate_name: file}, limit=limit,
              batch_size=4, samples_path=samples)
    return [json.loads(line)["loglikelihoods"] for line in samples.read_text().splitlines()]


def close(a, b, tol):
    return max(abs(x - y) for u, v in zip(a, b) for x, y in zip(u, v)) < tol


def argmaxes(lls):
    return [max(range(len(ll)), key=lambda i: (ll[i], -i)) for ll in lls]


def test_qwen35_shared_context_cache_matches_plain_forwards(tmp_path):
    """Linear-attention states are expanded with the cache; multi-token 8tags choices go through it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_model_dir("qwen3_5", 0, num_layers=4)
    file = str(DATA / "8tags.jsonl")
    ours = harness_lls(tmp_path, SubjectSpec(name="q35", model=str(path), dtype="float32"), "polish_8tags", file, 12)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
    ref = plain_lls(model, AutoTokenizer.from_pretrained(path), "polish_8tags", file, 12)
    assert close(ours, ref, 1e-4)
    assert argmaxes(ours) == argmaxes(ref)


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_adapter_scale(tmp_path, dora):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = tiny_model_dir("qwen3", 0)
    tok = AutoTokenizer.from_pretrained(base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype="float32")
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, use_dora=dora)
    get_peft_model(base, config).save_pretrained(tmp_path / "adapter")
    file = str(DATA / "psc.jsonl")

    def scored(scale):
        subject = SubjectSpec(name=f"s{scale}", model=str(base_dir), adapter=str(tmp_path / "adapter"), scale=scale,
                              dtype="float32")
        return harness_lls(tmp_path, subject, "polish_psc", file, 8)

    fresh = AutoModelForCausalLM.from_pretrained(base_dir, dtype="float32").eval()
    base_lls = plain_lls(fresh, tok, "polish_psc", file, 8)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype="float32"),
                                        tmp_path / "adapter").eval()
    adapted_lls = plain_lls(adapted, tok, "polish_psc", file, 8)
    assert not close(base_lls, adapted_lls, 1e-2)  # the adapter really changes the model
    assert close(scored(0.0), base_lls, 1e-4)
    assert close(scored(1.0), adapted_lls, 1e-4)
    half = scored(0.5)
    assert not close(half, base_lls, 1e-3) and not close(half, adapted_lls, 1e-3)
    if not dora:  # for LoRA, scale 0.5 is exactly LoRA with half its scaling
        for module in adapted.modules():
            if isinstance(getattr(module, "scaling", None), dict) and "default" in module.scaling:
                module.scaling["default"] *= 0.5
        assert close(half, plain_lls(adapted, tok, "polish_psc", file, 8), 1e-4)


def belebele_prompts(n: int) -> list[str]:
    from engine.datafiles import read_rows

    gate = load_gate("polish_belebele_regex")
    return [gate.render(r) for r in read_rows(DATA / "belebele.jsonl")[:n]] + ["Ala ma kota", "Kot"]


def test_hf_greedy_generation_is_batch_independent_and_stops(tmp_path):
    from engine.gates.hf_backend import HFBackend

    backend = HFBackend(str(tiny_model_dir("qwen3", 0)), None, 1.0, "cpu", "float32")
    prompts = belebele_prompts(6)
    one = backend.generate(prompts, [], 20, False, 1, lambda n: None)
    assert backend.generate(prompts, [], 20, False, 4, lambda n: None) == one
    assert all(one)
    stop = next(w for t in one for w in t.split() if len(w) > 1)  # a word the model does produce
    cut = backend.generate(prompts, [stop], 20, False, 4, lambda n: None)
    assert cut == [t.split(stop)[0] for t in one]
    assert any(c != t for c, t in zip(cut, one))


def test_gguf_and_hf_give_the_same_predictions(tmp_path):
    pytest.importorskip("llama_cpp")
    from engine.export.converter import HF_SCRIPT, converter_dir, run_converter

    model = tiny_model_dir("qwen3", 0)
    gguf = tmp_path / "tiny.gguf"
    run_converter(converter_dir(None), HF_SCRIPT, [str(model), "--outfile", str(gguf), "--outtype", "f32"],
                  tmp_path / "convert.log")
    for gate, file in (("polish_8tags", "8tags.jsonl"), ("polish_belebele", "belebele.jsonl")):
        hf = harness_lls(tmp_path, SubjectSpec(name=f"hf-{gate}", model=str(model), dtype="float32"), gate,
                         str(DATA / file), 0)
        gg = harness_lls(tmp_path, SubjectSpec(name=f"gguf-{gate}", backend="llama_cpp", file=str(gguf)), gate,
                         str(DATA / file), 0)
        assert argmaxes(hf) == argmaxes(gg), gate
        assert close(hf, gg, 1e-3), gate
    from engine.gates.gguf_backend import LlamaCppBackend

    backend = LlamaCppBackend(str(gguf), "cpu")
    texts = backend.generate(belebele_prompts(2), ["be"], 12, False, 2, lambda n: None)
    assert len(texts) == 4 and not any("be" in t for t in texts)
