"""launcher = "accelerate": the same train.sft job in 2 CPU processes (gloo), only the main one emitting."""

from __future__ import annotations

from train_fixtures import chat_file, of_type, run_in_process, tiny_model


def test_two_cpu_processes_train_the_tiny_model_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    status, events = run_in_process(run_dir, "train.sft", model=tiny_model(),
                                    data=str(chat_file(tmp_path / "chat.jsonl", n=16)), launcher="accelerate",
                                    num_processes=2, training={"epochs": 1.0, "save_steps": 100})
    assert status == "succeeded", events[-1]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert any(e["message"].startswith("training sft on 2 process(es)") for e in of_type(events, "log"))
    # 16 conversations, 4 per process and step, 2 processes: one epoch is 2 steps, saved once, announced once.
    assert [(c["step"], c["epoch"]) for c in of_type(events, "checkpoint")] == [(2, 1.0)]
    assert [p["done"] for p in of_type(events, "progress")] == [1, 2]
    assert (run_dir / "outputs" / "adapter" / "adapter_model.safetensors").is_file()
    assert not (run_dir / "outputs" / ".relay.jsonl").exists()
