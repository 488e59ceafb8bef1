"""`launcher = "accelerate"`: the same training under `accelerate launch` (DDP or FSDP), one process per device.

The job process starts `accelerate launch … -m engine.train.launch RUN_DIR` and stays the only writer of
events.jsonl: the main worker appends its events to outputs/.relay.jsonl, which the job process
re-emits in order (so `seq` stays one gapless sequence). On CPU, `--multi_gpu` is accelerate's
multi-process launcher and the workers' `use_cpu` makes them join over gloo (`--cpu` alone would start
a single process).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.errors import JobCancelled

RELAY = ".relay.jsonl"


class RelayWriter:
    """Stands in for EventWriter in the main worker: events go to the relay file, numbered by the job process."""

    def __init__(self, path: Path, run_id: str):
        self.run_id = run_id
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(self, type: str, **fields) -> dict:
        line = (json.dumps({"type": type, **fields}, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)
        return fields


class SilentWriter:
    """The other workers emit nothing."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def emit(self, type: str, **fields) -> dict:
        return fields


def relay(ctx, path: Path, offset: int) -> int:
    """Re-emit the complete lines of the relay file after `offset`; returns the new offset."""
    if not path.is_file():
        return offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        event = json.loads(line)
        ctx.emit(event.pop("type"), **event)
    return offset + end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_command(cfg, run_dir: Path, bf16: bool) -> list[str]:
    """`bf16`: the workers train in bf16 (engine.train.adapter.trains_bf16). FSDP casts what it gathers to the
    launcher's mixed precision, and a QLoRA run under FSDP stores its NF4 weights as bf16
    (`bnb_4bit_quant_storage`): "no" would leave FSDP's policy unset while the Trainer asks for bf16
    (transformers then sets the policy from the quant storage, `update_fsdp_plugin_peft`), so the launch says
    bf16 itself. On CPU it stays "no": a CPU worker reads ACCELERATE_MIXED_PRECISION and would autocast to bf16."""
    mode = ["--use_fsdp", "--fsdp_sharding_strategy", "FULL_SHARD", "--fsdp_auto_wrap_policy",
            "TRANSFORMER_BASED_WRAP", "--fsdp_state_dict_type", "FULL_STATE_DICT", "--fsdp_use_orig_params", "true"] \
        if cfg.distributed == "fsdp" else ["--multi_gpu"]
    return [sys.executable, "-m", "accelerate.commands.launch", *mode, "--num_processes", str(cfg.num_processes),
            "--num_machines", "1", "--mixed_precision", "bf16" if bf16 else "no", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port()), "-m", "engine.train.launch", str(run_dir)]


def launch(cfg, ctx) -> None:
    """Run the workers and relay the main worker's events until they all exit."""
    from engine.train.adapter import has_cuda, trains_bf16
    from engine.train.gating import ROOT

    path = ctx.outputs / RELAY
    relay(ctx, path, 0)  # events a killed earlier launch left behind
    path.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if not has_cuda():
        env["ACCELERATE_USE_CPU"] = "true"
    proc = subprocess.Popen(accelerate_command(cfg, ctx.run_dir, trains_bf16(cfg)), cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    offset = 0
    try:
        while proc.poll() is None:
            offset = relay(ctx, path, offset)
            time.sleep(0.2)
    except JobCancelled:
        proc.terminate()
        proc.wait()
        raise
    finally:
        relay(ctx, path, offset)
        path.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"accelerate launch exited with code {proc.returncode} (the workers' errors are in "
                           f"{ctx.run_dir / 'log.txt'})")


def worker(run_dir: Path) -> None:
    """One training process under the launcher: the job's spec from RUN_DIR/job.toml, events through the relay."""
    from engine.events import JobContext
    from engine.jobs import load_spec
    from engine.train.run import prepare, train

    from engine.refs import resolve_refs

    spec = load_spec(run_dir / "job.toml")
    spec.config = resolve_refs(spec.config)
    run_id = json.loads((run_dir / "events.jsonl").read_bytes().split(b"\n", 1)[0])["run"]
    is_main = int(os.environ.get("RANK", "0")) == 0
    writer = RelayWriter(run_dir / "outputs" / RELAY, run_id) if is_main else SilentWriter(run_id)
    ctx = JobContext(run_dir, writer)
    kind = spec.kind.name.split(".", 1)[1]
    train(kind, spec.config, ctx, prepare(kind, spec.config, ctx), is_main=is_main)


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
