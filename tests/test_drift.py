"""Anti-drift on the tiny model: kl_to_base keeps the adapted model near the base on held-out prompts, the drift
meter measures what the saved adapter really does, and max_drift saves a checkpoint and stops."""

from __future__ import annotations

import asyncio

import pytest

from engine.errors import SpecError
from engine.jobs import parse_spec
from test_data_klej import run_cli
from train_fixtures import chat_file, of_type, run_in_process, tiny_model, write_jsonl

HELD_OUT = ["Opisz pogodę w górach.", "What is the capital of France?", "Policz do pięciu.",
            "Explain recursion in one sentence."]


def train(tmp_path, name: str, **training) -> tuple[str, list[dict]]:
    probes = write_jsonl(tmp_path / "probes.jsonl", [{"prompt": p} for p in HELD_OUT])
    return run_in_process(
        tmp_path / name, "train.sft", model=tiny_model(), data=str(chat_file(tmp_path / "chat.jsonl")),
        kl_to_base=training.pop("kl_to_base", 0.0), adapter={"method": "lora", "dropout": 0.0},
        training={"max_steps": 6, "save_steps": 6, "learning_rate": 5e-3, "drift_steps": 3,
                  "drift_probes": str(probes), **training})


def drift(events: list[dict]) -> dict[int, float]:
    return {e["step"]: e["value"] for e in of_type(events, "metric") if e["key"] == "drift_kl"}


def test_kl_to_base_keeps_the_adapted_model_closer_to_the_base_on_held_out_prompts(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.train.drift import DriftMeter

    status, plain = train(tmp_path, "plain")
    assert status == "succeeded"
    status, anchored = train(tmp_path, "anchored", kl_to_base=50.0)
    assert status == "succeeded"
    assert sorted(drift(plain)) == sorted(drift(anchored)) == [3, 6]
    assert drift(plain)[6] > 1e-4
    assert drift(anchored)[6] < 0.5 * drift(plain)[6]
    # The anchor is part of what the checkpoint is: in its recipe and its event; its KL is logged.
    ckpt = of_type(anchored, "checkpoint")[-1]
    assert ckpt["subject"]["recipe"]["kl_to_base"] == 50.0 and ckpt["kl_to_base"] == 50.0
    assert "kl_to_base" not in of_type(plain, "checkpoint")[-1]["subject"]["recipe"]
    assert any(e["key"] == "kl_to_base" for e in of_type(anchored, "metric"))
    # The meter measured what the published adapter does to the base, held-out prompt by prompt.
    tok = AutoTokenizer.from_pretrained(tiny_model())
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model()),
                                      str(tmp_path / "plain" / "outputs" / "adapter"))
    probes = [[{"role": "user", "content": p}] for p in HELD_OUT]
    assert DriftMeter(tok, probes).measure(model) == pytest.approx(drift(plain)[6], rel=1e-3)


def test_max_drift_saves_a_checkpoint_and_stops_and_runs_show_has_the_drift(tmp_path, home, capsys):
    status, events = train(tmp_path, "run", drift_steps=2, max_drift=1e-9, save_steps=100)
    assert status == "succeeded"
    (ckpt,) = of_type(events, "checkpoint")
    assert ckpt["step"] == 2 and ckpt["stopped_by"] == "max_drift" and ckpt["drift_kl"] > 1e-9
    assert any("passed max_drift" in e.get("message", "") for e in of_type(events, "log"))
    assert run_cli(["ingest", str(tmp_path / "run")], capsys)[0] == 0
    code, out, _ = run_cli(["runs", "show", events[0]["run"]], capsys)
    assert code == 0 and f"{ckpt['drift_kl']:.4g} (step 2)" in out and "\nloss " in out
    asyncio.run(tui_shows_drift(home, events[0]["run"], f"{ckpt['drift_kl']:.3g}"))


async def tui_shows_drift(home, run_id: str, drift_kl: str) -> None:
    """The jobs screen shows the run's last loss and drift side by side."""
    from tui_pilot import until

    from slayer_console.app import make_app
    from slayer_console.context import Settings

    app = make_app(Settings.create(str(home)), poll_s=0.25, mode="jobs")
    async with app.run_test(size=(160, 30)) as pilot:
        cell = await until(pilot, lambda: str(app.screen.query_one("#runs").get_cell(run_id, "fit"))
                           if app.screen.query("#runs") and run_id in app.screen.runs else "", what="the run's row")
        loss, drift = cell.split(" · ")
        assert float(loss) > 0 and drift == drift_kl


def test_max_drift_needs_the_meter():
    with pytest.raises(SpecError, match="max_drift needs drift_steps"):
        parse_spec({"kind": "train.sft", "model": "m", "data": "d", "training": {"max_drift": 0.1}}, "job.toml")


def test_the_meters_top_k_kl_is_exact_over_the_whole_vocabulary_and_a_lower_bound_over_less():
    import torch
    import torch.nn.functional as F

    from engine.train.drift import kl_to_base, top_k_kl

    torch.manual_seed(0)
    base, adapted = torch.randn(6, 50) * 3, torch.randn(6, 50) * 3
    exact = kl_to_base(adapted, base)
    assert torch.allclose(top_k_kl(*F.log_softmax(base, -1).topk(50), adapted), exact, atol=1e-5)
    coarse = top_k_kl(*F.log_softmax(base, -1).topk(5), adapted)
    assert (coarse <= exact + 1e-5).all() and (coarse > 0.3 * exact).all()
