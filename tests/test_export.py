"""`export.gguf` end to end on a tiny Qwen3: merge → llama.cpp converter → quantise → verify against HF."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("llama_cpp")

from engine.gates.backend import SubjectSpec  # noqa: E402
from engine.jobs import parse_spec  # noqa: E402
from engine.runner import run_job  # noqa: E402
from engine.tiny.build import tiny_model_dir  # noqa: E402
from merge_fixtures import make_adapter  # noqa: E402


def events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def lora_adapter(tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "adapter"
    return make_adapter(tiny_model_dir("qwen3", 0), out, dora=False,
                        target_modules=["q_proj", "v_proj", "up_proj", "down_proj"])


def test_export_merged_quantised_and_lora_gguf_match_hf(tmp_path, lora_adapter):
    from engine.export.verify import fidelity, hf_reference, read_probes

    base = tiny_model_dir("qwen3", 0)
    spec = parse_spec({"kind": "export.gguf", "model": str(base), "adapter": str(lora_adapter), "scale": 0.5,
                       "quants": ["Q8_0"], "lora_gguf": True, "file_stem": "tiny"}, "test")
    run = tmp_path / "run"
    assert run_job(spec, run) == "succeeded", (run / "events.jsonl").read_text()[-2000:]
    ev = events(run)
    ggufs = {e["quant"]: e for e in ev if e["type"] == "artifact" and e["kind"] == "gguf" and "base" not in e["path"]}
    f16, q8 = ggufs["F16"], ggufs["Q8_0"]
    assert f16["kl"] < 1e-3 and f16["top1"] > 0.99
    assert f16["verification"]["tokenizer_match"] == 1.0  # llama.cpp tokenises the probes as HF does
    assert f16["kl"] < q8["kl"] < 1e-2 and q8["bytes"] < f16["bytes"]
    for e in (f16, q8):
        # the subject a `gate` job scoring this file with the llama_cpp backend records: results join it
        file = str((run / e["path"]).resolve())
        assert e["subject"] == SubjectSpec(name=e["subject"]["name"], kind="quant", backend="llama_cpp",
                                           file=file).subject()
        assert e["subject"]["recipe"]["format"] == "gguf" and e["subject"]["recipe"]["file"] == file
        assert e["source"]["adapter"] == str(lora_adapter) and e["source"]["scale"] == 0.5

    # the LoRA GGUF, applied by llama.cpp at scale 0.5 on the base GGUF, matches the merged HF model …
    lora = next(e for e in ev if e["type"] == "artifact" and e["kind"] == "gguf_lora")
    assert lora["kl"] < 1e-3 and lora["lora_scale"] == 0.5
    # … far better than the base GGUF alone does: the check can tell a missing adapter
    texts, _ = read_probes()
    merged_ref = hf_reference(run / "outputs" / "merged", texts, 64)
    without = fidelity(run / "outputs" / "gguf" / lora["base_file"], merged_ref)
    assert without["kl"] > 100 * lora["kl"]

    report = json.loads((run / "outputs" / "gguf" / "verify.json").read_text())
    assert [f["quant"] for f in report["files"]] == ["F16", "Q8_0", "F16", "LORA-F16"]
    assert report["probes"]["count"] == len(texts) and report["timings_s"]["convert_s"] > 0
    assert {e["key"] for e in ev if e["type"] == "metric"} >= {"export/convert_s", "export/verify_s"}


def test_dora_adapter_gguf_is_refused_with_the_merged_path_offered(tmp_path):
    base = tiny_model_dir("qwen3", 0)
    adapter = make_adapter(base, tmp_path / "dora", dora=True, target_modules=["q_proj"])
    spec = parse_spec({"kind": "export.gguf", "model": str(base), "adapter": str(adapter), "lora_gguf": True},
                      "test")
    assert run_job(spec, tmp_path / "run") == "failed"
    error = events(tmp_path / "run")[-1]["error"]
    assert "DoRA" in error and "lora_gguf = false" in error
    assert not list((tmp_path / "run" / "outputs").rglob("*.gguf"))



def test_dora_ties_merge_exports_and_matches_its_merged_hf_model(tmp_path):
    """The way out the DoRA refusal offers: merge first (here TIES), then export; verified against the merge."""
    base = tiny_model_dir("qwen3", 0)
    adapter = make_adapter(base, tmp_path / "dora", dora=True, target_modules=["q_proj", "up_proj"])
    spec = parse_spec({"kind": "export.gguf", "model": str(base), "adapter": str(adapter), "quants": [],
                       "merge": {"method": "ties", "density": 0.5}}, "test")
    run = tmp_path / "run"
    assert run_job(spec, run) == "succeeded", (run / "events.jsonl").read_text()[-2000:]
    merged = json.loads((run / "outputs" / "merged" / "slayer_merge.json").read_text())
    assert merged["method"] == "ties" and merged["dora"] and merged["weights_changed"] == 4
    (f16,) = [e for e in events(run) if e["type"] == "artifact" and e["kind"] == "gguf"]
    assert f16["kl"] < 1e-3 and f16["top1"] > 0.99
    assert f16["source"]["merge"] == {"method": "ties", "density": 0.5, "seed": 0}

def test_bad_converter_path_and_inconsistent_specs_are_refused(tmp_path):
    from engine.errors import SpecError
    from engine.export.converter import converter_dir

    with pytest.raises(SpecError, match="not a llama.cpp checkout"):
        converter_dir(str(tmp_path))
    base = str(tiny_model_dir("qwen3", 0))
    with pytest.raises(SpecError, match="`merge` needs an `adapter`"):
        parse_spec({"kind": "export.gguf", "model": base, "merge": {"method": "ties", "density": 0.5}}, "job.toml")
    with pytest.raises(SpecError, match="quants.*Q4_K_M"):  # the message lists the known types
        parse_spec({"kind": "export.gguf", "model": base, "quants": ["Q9_9"]}, "job.toml")
