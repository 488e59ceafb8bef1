"""The memory planner: its shapes count the real parameters, its estimates land within ±25 % of measured peaks on CPU
miniatures, the campaign's recipes pass it on their boxes, and what cannot fit is refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from train_fixtures import write_jsonl

from engine.jobs import parse_spec
from engine.plan import FITS, NO_FIT, TIGHT, machine_from_report, model_shape, plan_training
from engine.plan.machine import GIB

ROOT = Path(__file__).resolve().parents[1]
MINIATURE = dict(hidden_size=384, intermediate_size=1152, num_layers=4, num_heads=6, num_kv_heads=2, head_dim=64,
                 vocab_size=6000)


def slayer(*args, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slayer_console", "--home", str(home), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("arch", ["qwen3", "qwen3_5"])
def test_the_shape_counts_exactly_the_parameters_the_model_has(arch):
    from transformers import AutoModelForCausalLM

    from engine.tiny.build import tiny_model_dir

    path = tiny_model_dir(arch=arch, seed=0, num_layers=4)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model_shape(str(path)).params == sum(p.numel() for p in model.parameters())


def test_the_published_qwen35_27b_matches_its_model_card():
    shape = model_shape("Qwen/Qwen3.5-27B")
    assert (shape.layers, shape.linear_layers, shape.hidden, shape.vocab) == (64, 48, 5120, 248320)
    total = shape.params + shape.extra_params  # the text model, plus vision tower and MTP layer on disk
    assert total == pytest.approx(27.78e9, rel=0.01)
    assert total * 2 == pytest.approx(shape.disk_bytes, rel=0.01)


def _long_chats(path: Path) -> Path:
    """Answers longer than max_length, so every sequence is as long as the planner assumes."""
    text = " ".join(f"Zdanie numer {i} o rzece, górach i mieście." for i in range(60))
    return write_jsonl(path, [{"messages": [{"role": "user", "content": f"Opowiedz {i}."},
                                            {"role": "assistant", "content": text}]} for i in range(8)])


@pytest.mark.slow
def test_estimates_are_within_25_percent_of_measured_peaks(tmp_path):
    """Two CPU miniatures (with and without gradient checkpointing), measured in one child process."""
    from engine.plan.measure import measure_jobs
    from engine.tiny.build import tiny_model_dir

    model = str(tiny_model_dir(arch="qwen3", seed=0, **MINIATURE))
    data = str(_long_chats(tmp_path / "chat.jsonl"))
    specs = [{"kind": "train.sft", "model": model, "data": data, "adapter": {"method": "lora", "rank": 16},
              "training": {"max_steps": 1, "save_steps": 1, "batch_size": 4, "max_length": 256, "warmup": 0,
                           "gradient_checkpointing": checkpointing}} for checkpointing in (False, True)]
    measured = measure_jobs(specs, [tmp_path / "full", tmp_path / "checkpointed"])
    cpu = machine_from_report({"box": "here", "arch": "x86_64", "mem_total_gib": 64, "disk_free_gib": 100})
    for spec, m in zip(specs, measured):
        assert m["status"] == "succeeded"
        plan = plan_training(parse_spec(spec, "spec").config, cpu)
        estimate = plan.need_gib * GIB - plan.memory.runtime
        assert estimate == pytest.approx(m["added"], rel=0.25), (spec["training"], estimate / 2**20, m["added"] / 2**20)


def _recorded(home: Path, box: str, report: dict) -> None:
    (home / "boxes.toml").write_text(f'["{box}"]\nhost = "{box}.lan"\n', encoding="utf-8")
    (home / "box_checks").mkdir(exist_ok=True)
    (home / "box_checks" / f"{box}.json").write_text(json.dumps(report), encoding="utf-8")


@pytest.mark.parametrize("box", ["gb10", "3090", "vast-4x3090"])
def test_each_recipe_passes_the_plan_of_its_box(home, tmp_path, box):
    from engine.recipes import recipe_machine_report

    shown = slayer("jobs", "example", "train.sft", "--for", box, home=home)
    assert shown.returncode == 0, shown.stderr
    data = tomllib.loads(shown.stdout)
    assert data["model"] == "Qwen/Qwen3.5-27B" and data["quantization"] == "4bit"
    assert data["adapter"]["method"] == "dora" and data["adapter"]["rank"] == 16 and data["adapter"]["use_rslora"]
    assert data["training"]["gradient_checkpointing"] and data["gates"]["mode"] in ("in_process", "process")
    spec = tmp_path / "recipe.toml"
    spec.write_text(shown.stdout, encoding="utf-8")
    _recorded(home, box, recipe_machine_report(box))
    planned = slayer("plan", str(spec), "--box", box, "--format", "json", home=home)
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["verdict"] in (FITS, TIGHT)


def test_a_job_that_cannot_fit_is_refused_in_one_line_with_the_cheapest_fix(home, tmp_path):
    from engine.recipes import recipe, recipe_machine_report

    spec = tmp_path / "gb10.toml"
    spec.write_text(recipe("train.sft", "gb10"), encoding="utf-8")  # a gate process beside training: 2 copies
    _recorded(home, "3090", recipe_machine_report("3090"))
    planned = slayer("plan", str(spec), "--box", "3090", home=home)
    assert planned.returncode == 2 and NO_FIT in planned.stdout
    error = planned.stderr.strip()
    assert "\n" not in error and "DOES NOT FIT on box 3090" in error and "cheapest change that fits" in error
    launched = slayer("run", str(spec), "--box", "3090", home=home)
    assert launched.returncode == 2 and launched.stderr.strip() == error.replace("error: ", "error: ", 1)
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())  # nothing launched


def test_a_box_never_checked_and_a_recipe_for_an_unknown_box_are_one_line(home, tmp_path):
    (home / "boxes.toml").write_text('[simp]\nhost = "simp.lan"\n', encoding="utf-8")
    spec = tmp_path / "sft.toml"
    spec.write_text(slayer("jobs", "example", "train.sft", home=home).stdout, encoding="utf-8")
    never = slayer("plan", str(spec), "--box", "simp", home=home)
    assert never.returncode == 2 and never.stderr.count("\n") == 1
    assert "box 'simp' was never checked" in never.stderr and "slayer boxes check simp" in never.stderr
    unknown = slayer("jobs", "example", "train.sft", "--for", "h100", home=home)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "no recipe for box 'h100'" in unknown.stderr and "3090, gb10, vast-4x3090" in unknown.stderr


@pytest.mark.slow
def test_disk_of_an_export_is_what_the_real_export_writes(tmp_path):
    """A real export.gguf (merge, f16, Q8_0) of a miniature whose weights outweigh its tokenizer: each file's
    estimate within 10 % of its size on disk."""
    pytest.importorskip("llama_cpp")
    from merge_fixtures import make_adapter

    from engine.plan import plan_export
    from engine.runner import run_job
    from engine.tiny.build import tiny_model_dir

    model = str(tiny_model_dir(arch="qwen3", seed=0, hidden_size=256, intermediate_size=768, num_layers=4,
                               num_heads=4, num_kv_heads=2, head_dim=64))
    adapter = str(make_adapter(model, tmp_path / "adapter", dora=True))
    spec = parse_spec({"kind": "export.gguf", "model": model, "adapter": adapter, "quants": ["Q8_0"],
                       "verify": False, "file_stem": "m"}, "export.toml")
    assert run_job(spec, tmp_path / "run") == "succeeded"
    out = tmp_path / "run" / "outputs"
    measured = {"merged model (outputs/merged)": sum(f.stat().st_size for f in (out / "merged").glob("*.safetensors")),
                "GGUF F16 (converted; the quants' source)": (out / "gguf" / "m-F16.gguf").stat().st_size,
                "GGUF Q8_0": (out / "gguf" / "m-Q8_0.gguf").stat().st_size}
    cpu = machine_from_report({"box": "here", "arch": "x86_64", "mem_total_gib": 64, "disk_free_gib": 100})
    plan = plan_export(spec.config, cpu)
    assert set(plan.disk) == set(measured)
    for what, size in measured.items():
        assert plan.disk[what] == pytest.approx(size, rel=0.10), (what, plan.disk[what], size)
    assert plan.verdict == FITS


def test_an_export_that_cannot_fit_names_the_quant_to_drop(home, tmp_path):
    from engine.recipes import recipe_machine_report

    spec = tmp_path / "export.toml"
    spec.write_text('kind = "export.gguf"\nmodel = "Qwen/Qwen3.5-27B"\nadapter = "runs/sft/outputs/adapter"\n'
                    'quants = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M"]\n', encoding="utf-8")
    report = {**recipe_machine_report("3090"), "disk_free_gib": 160}
    _recorded(home, "3090", report)
    planned = slayer("plan", str(spec), "--box", "3090", home=home)
    assert planned.returncode == 2 and NO_FIT in planned.stdout and "GGUF Q4_K_M" in planned.stdout
    error = planned.stderr.strip()
    assert "\n" not in error and "DOES NOT FIT on box 3090" in error
    assert "cheapest change that fits: drop Q8_0 from quants" in error
    launched = slayer("run", str(spec), "--box", "3090", home=home)
    assert launched.returncode == 2 and "DOES NOT FIT" in launched.stderr
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_auto_gating_fans_out_only_with_boxes_and_no_room_for_a_second_copy():
    from engine.recipes import recipe, recipe_machine_report

    def pick(box: str, **gates) -> str:
        data = tomllib.loads(recipe("train.sft", box))
        data["gates"] = {**data["gates"], "mode": "auto", **gates}
        return plan_training(parse_spec(data, box).config, machine_from_report(recipe_machine_report(box))) \
            .gating_default

    assert pick("3090") == "in_process"  # no room for a second copy, no gate boxes
    assert pick("3090", boxes=["simp2"]) == "fanout"
    assert pick("gb10", boxes=["simp2"]) == "process"  # a second 4-bit copy fits beside training


def test_fanout_plans_the_gate_job_on_each_gate_box(home, tmp_path):
    from engine.jobs import dumps_toml
    from engine.recipes import recipe, recipe_machine_report

    (home / "boxes.toml").write_text('["3090"]\nhost = "a.lan"\n\n[simp2]\nhost = "b.lan"\n', encoding="utf-8")
    (home / "box_checks").mkdir()
    for box in ("3090", "simp2"):
        (home / "box_checks" / f"{box}.json").write_text(json.dumps({**recipe_machine_report("3090"), "box": box}))
    data = tomllib.loads(recipe("train.sft", "3090"))
    spec = tmp_path / "fanout.toml"
    for quantization, verdicts in (("none", (NO_FIT,)), ("4bit", (FITS, TIGHT))):
        data["gates"] = {**data["gates"], "mode": "fanout", "boxes": ["simp2"], "quantization": quantization}
        spec.write_text(dumps_toml(data), encoding="utf-8")
        planned = slayer("plan", str(spec), "--box", "3090", "--format", "json", home=home)
        result = json.loads(planned.stdout)
        assert result["verdict"] in verdicts and result["gate_boxes"][0].startswith("gate box simp2: a gate job needs")
    data["gates"]["quantization"] = "none"  # the refusal line of the bf16 gate job
    spec.write_text(dumps_toml(data), encoding="utf-8")
    error = slayer("plan", str(spec), "--box", "3090", home=home).stderr.strip()
    assert "\n" not in error and "gate box simp2 cannot hold a gate job" in error and 'quantization = "4bit"' in error
