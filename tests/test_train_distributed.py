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


def _worker_env(cmd: list[str]) -> dict:
    """The environment accelerate gives the workers of this launch command (its own parser and env builder)."""
    from accelerate.commands.launch import launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    return prepare_multi_gpu_env(launch_command_parser().parse_args(cmd[3:]))


def test_a_qlora_fsdp_launch_asks_for_bf16_and_a_cpu_launch_does_not(tmp_path, monkeypatch):
    import torch

    from engine.train import adapter
    from engine.train.config import SFTJobConfig
    from engine.train.launch import accelerate_command

    cpu = SFTJobConfig(model="m", data="d", launcher="accelerate", num_processes=2)
    env = _worker_env(accelerate_command(cpu, tmp_path, adapter.trains_bf16(cpu)))
    assert env["ACCELERATE_MIXED_PRECISION"] == "no"
    # the 4×3090 recipe's shape on a CUDA box (none here: the launch is built, not run)
    monkeypatch.setattr(adapter, "has_cuda", lambda: True)
    qlora = SFTJobConfig(model="m", data="d", launcher="accelerate", num_processes=4, distributed="fsdp",
                         quantization="4bit")
    env = _worker_env(accelerate_command(qlora, tmp_path, adapter.trains_bf16(qlora)))
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16" and env["ACCELERATE_USE_FSDP"] == "true"
    assert env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD" and env["FSDP_USE_ORIG_PARAMS"] == "true"
    assert adapter.nf4_config(sharded=True).bnb_4bit_quant_storage == torch.bfloat16
