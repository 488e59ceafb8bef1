"""The `model.tiny` job kind: a tiny real Qwen3 / Qwen3.5 that transformers loads, with a Polish-aware tokenizer."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.jobs import get_kind, parse_spec
from engine.tiny.build import build_tiny_model, tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
POLISH = [
    "Zażółć gęślą jaźń — Pchnąć w tę łódź jeża lub ośm skrzyń fig.",
    "Cena wynosi 49,99 zł; spotkanie o 10:30, 14 marca 2025 r.",
    "Źdźbło, żółw i ćma: ĄĆĘŁŃÓŚŹŻ ąćęłńóśźż!",
    "def f(x):\n    return x * 2  # dwie spacje\tтекст 😀",
    " wiodąca spacja i  podwójna",
]
LABELS = ["Tak", "Nie", "A", "B", "C", "D", "Neutralny", "Negatywny", "Pozytywny", "Niejednoznaczny",
          "Film", "Historia", "Jedzenie", "Medycyna", "Motoryzacja", "Praca", "Sport", "Technologie"]


@pytest.fixture(scope="module", params=["qwen3", "qwen3_5"])
def tiny(request):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_model_dir(request.param)
    return request.param, AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_auto_classes_load_and_forward_512_tokens(tiny):
    import torch

    arch, model, tok = tiny
    assert model.config.vocab_size == len(tok) == 1024
    assert type(model).__name__ == {"qwen3": "Qwen3ForCausalLM", "qwen3_5": "Qwen3_5ForCausalLM"}[arch]
    if arch == "qwen3_5":
        assert set(model.config.layer_types) == {"linear_attention", "full_attention"}
    ids = tok(" ".join(POLISH * 40), return_tensors="pt").input_ids[:, :512]
    assert ids.shape == (1, 512)
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, 512, len(tok)) and torch.isfinite(logits).all()


def test_tokenizer_round_trips_polish_without_unknown_tokens(tiny):
    _, _, tok = tiny
    for text in POLISH:
        ids = tok.encode(text)
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text
    # Polish letters are learned pieces, not byte fallbacks.
    assert all(not p.startswith("<0x") for p in tok.tokenize("zażółć gęślą jaźń"))


def test_label_word_after_a_space_is_scored_as_its_own_tokens(tiny):
    """Likelihood gates split context + " Tak" at the context's tokens; the label must start a fresh ▁ piece."""
    _, _, tok = tiny
    context = tok.encode("Pytanie: Czy to prawda? Odpowiedź:")
    for label in LABELS:
        full = tok.encode(f"Pytanie: Czy to prawda? Odpowiedź: {label}")
        assert full[:len(context)] == context
        rest = tok.convert_ids_to_tokens(full[len(context):])
        assert rest[0].startswith("▁") and tok.decode(full[len(context):]).strip() == label
    assert tok.tokenize(" Tak") == ["▁", "▁Tak"] and tok.tokenize("Tak") == ["▁Tak"]


def test_chat_template_renders_chatml_and_stops_on_im_end(tiny):
    _, model, tok = tiny
    messages = [{"role": "system", "content": "Jesteś pomocny."}, {"role": "user", "content": "Ile to 2+2?"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nJesteś pomocny.<|im_end|>\n<|im_start|>user\nIle to 2+2?<|im_end|>\n"
                    "<|im_start|>assistant\n")
    ids = tok(text, add_special_tokens=False).input_ids
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 3
    assert tok.eos_token == "<|im_end|>" and model.config.eos_token_id == tok.eos_token_id
    assert tok.pad_token is not None and tok.pad_token_id != tok.eos_token_id
    assert tok.encode("Tak")[0] != tok.bos_token_id  # Qwen-like: no BOS is added


def test_same_seed_gives_same_model_and_another_seed_does_not(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=7)
    b = build_tiny_model(tmp_path / "b", seed=7)
    c = build_tiny_model(tmp_path / "c", seed=8)
    weights = [(p / "model.safetensors").read_bytes() for p in (a, b, c)]
    assert weights[0] == weights[1] != weights[2]
    assert (a / "tokenizer.model").read_bytes() == (c / "tokenizer.model").read_bytes()


def test_extra_corpus_and_bad_config_are_reported(tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("Jedziemy do Żółwikowa, bo w Żółwikowie jest Żółwikowo.\n" * 50)
    vocab = {}
    for name, corpus in (("plain", None), ("extra", str(extra))):
        out = build_tiny_model(tmp_path / name, corpus=corpus)
        vocab[name] = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    assert "▁Żółwikowo" not in vocab["plain"] and "▁Żółwikowo" in vocab["extra"]
    with pytest.raises(SpecError, match="nope.txt: corpus file or folder not found"):
        build_tiny_model(tmp_path / "x", corpus=str(tmp_path / "nope.txt"))
    assert not (tmp_path / "x").exists()
    with pytest.raises(SpecError, match="num_kv_heads"):
        parse_spec({"kind": "model.tiny", "num_heads": 4, "num_kv_heads": 3}, "job.toml")
    with pytest.raises(SpecError, match="arch"):
        parse_spec({"kind": "model.tiny", "arch": "llama"}, "job.toml")


def test_example_job_runs_as_printed(tmp_path):
    spec = tmp_path / "job.toml"
    spec.write_text(get_kind("model.tiny").example)
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "engine", "run", str(spec), "--run-dir", str(run_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + (run_dir / "log.txt").read_text()
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["status"] for e in events if e["type"] == "status"] == ["queued", "running", "succeeded"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    progress = [e for e in events if e["type"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"]
    (artifact,) = [e for e in events if e["type"] == "artifact"]
    assert artifact["kind"] == "model" and artifact["path"] == "outputs/model"
    model_dir = run_dir / "outputs" / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen3" and config["hidden_size"] == 64
    assert {"tokenizer.model", "tokenizer.json", "model.safetensors"} <= {p.name for p in model_dir.iterdir()}
    assert tomllib.loads((run_dir / "job.toml").read_text())["seed"] == 0
    assert [p.name for p in (run_dir / "outputs").iterdir()] == ["model"]  # no temp folder left behind
