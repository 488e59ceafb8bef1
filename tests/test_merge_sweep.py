"""`merge.sweep` end to end on a tiny Qwen3: scale and TIES candidates become subjects, each gated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("peft")

from engine.gates.backend import SubjectSpec  # noqa: E402
from engine.jobs import parse_spec  # noqa: E402
from engine.runner import run_job  # noqa: E402
from engine.tiny.build import tiny_model_dir  # noqa: E402
from engine.train.stack import write_meta  # noqa: E402
from merge_fixtures import make_adapter  # noqa: E402

PSC = str(Path(__file__).parent / "data" / "gates" / "psc.jsonl")


def test_sweep_gates_scale_and_ties_candidates(tmp_path):
    base = tiny_model_dir("qwen3", 0)
    adapter = make_adapter(base, tmp_path / "ckpt-7", dora=True, target_modules=["q_proj", "v_proj", "down_proj"])
    write_meta(adapter, {"subject": "sft-replay-ckpt-7"})  # as training writes it: candidates take its name
    spec = parse_spec({
        "kind": "merge.sweep", "model": str(base), "adapter": str(adapter), "scales": [0.5], "gate_base": True,
        "variants": [{"method": "ties", "density": 0.5}, {"method": "dare_linear", "density": 0.5, "seed": 3}],
        "gate": {"suite": "", "gates": ["polish_psc"], "files": {"polish_psc": PSC}, "limit": 6},
    }, "test")
    run = tmp_path / "run"
    assert run_job(spec, run) == "succeeded", (run / "events.jsonl").read_text()[-2000:]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    results = [e for e in events if e["type"] == "gate_result"]
    subjects = [r["subject"] for r in results]
    assert [s["name"] for s in subjects] == [base.name, "sft-replay-ckpt-7 ×0.5", "sft-replay-ckpt-7 ties d0.5",
                                             "sft-replay-ckpt-7 dare_linear d0.5 seed 3"]
    assert [s["kind"] for s in subjects] == ["base", "merge", "merge", "merge"]
    assert all(r["gate"] == "polish_psc" and r["n"] == 6 for r in results)
    assert len({json.dumps(r["fingerprint"], sort_keys=True) for r in results}) == 1  # comparable with each other

    # the scale candidate is the subject a plain `gate` job on base + adapter × 0.5 would score
    plain = SubjectSpec(name="sft-replay-ckpt-7 ×0.5", kind="merge", model=str(base), adapter=str(adapter), scale=0.5)
    assert subjects[1]["id"] == plain.subject()["id"]
    # TIES / DARE candidates are recorded by recipe, not by where they were written
    ties = subjects[2]["recipe"]
    assert ties["model"] == str(base) and ties["adapter"] == str(adapter)
    assert ties["merge"] == {"method": "ties", "density": 0.5, "seed": 0} and ties["scale"] == 1.0
    assert subjects[2]["id"] != subjects[3]["id"]

    written = [e for e in events if e["type"] == "artifact" and e["kind"] == "hf_model"]
    assert [e["subject"]["id"] for e in written] == [subjects[2]["id"], subjects[3]["id"]]
    assert (run / "outputs" / "merges" / "ties-d0.5" / "model.safetensors").is_file()
    listing = json.loads((run / "outputs" / "candidates.json").read_text())
    assert [c["subject"]["id"] for c in listing] == [s["id"] for s in subjects]


def test_sweep_refuses_a_non_adapter_before_any_work(tmp_path):
    base = tiny_model_dir("qwen3", 0)
    spec = parse_spec({"kind": "merge.sweep", "model": str(base), "adapter": str(base), "skip_gates": True}, "test")
    assert run_job(spec, tmp_path / "run") == "failed"
    last = json.loads((tmp_path / "run" / "events.jsonl").read_text().splitlines()[-1])
    assert "adapter_config.json" in last["error"]
