"""The vLLM recipe for GPU boxes: the base model with the LoRA adapter hot-loaded (`--enable-lora
--lora-modules NAME=PATH`), so the adapter can be swapped without reloading 27B of base weights.

vLLM applies plain LoRA only: a DoRA adapter (`use_dora` in adapter_config.json) is refused with a line
saying to serve the merged GGUF instead.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from engine.errors import SpecError
from engine.serve.config import VLLMSettings


def check_adapter(adapter: str) -> dict:
    path = Path(adapter).expanduser() / "adapter_config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"vllm.adapter: {path}: no such file (a PEFT adapter directory is needed)") from None
    except ValueError as e:
        raise SpecError(f"vllm.adapter: {path}: malformed JSON ({e})") from None
    if config.get("use_dora"):
        raise SpecError(f"vllm.adapter: {adapter} is a DoRA adapter, which vLLM cannot hot-load; serve the merged "
                        "GGUF (mode = \"llama-swap\" or \"direct\") or export a merged model")
    return config


def vllm_command(v: VLLMSettings, name: str, rank: int | None = None) -> list[str]:
    """`vllm serve` with the adapter registered under `name` at start-up."""
    adapter = str(Path(v.adapter).expanduser().resolve())
    return ["vllm", "serve", v.model, "--port", str(v.port), "--enable-lora",
            "--lora-modules", f"{v.adapter_name or name}={adapter}",
            "--max-lora-rank", str(max(v.max_lora_rank, rank or 0)), "--max-model-len", str(v.max_model_len),
            "--gpu-memory-utilization", f"{v.gpu_memory_utilization:g}", "--tensor-parallel-size",
            str(v.tensor_parallel_size), "--dtype", v.dtype]


def vllm_script(v: VLLMSettings, name: str) -> str:
    """A shell script that runs the recipe; runtime loading of further adapters is enabled too."""
    rank = check_adapter(v.adapter).get("r")
    args = [shlex.quote(a) for a in vllm_command(v, name, rank)]
    lines = [" ".join(args[:3])]  # vllm serve MODEL, then one option and its value per line
    for a in args[3:]:
        if a.startswith("--"):
            lines.append(a)
        else:
            lines[-1] += " " + a
    cmd = " \\\n  ".join(lines)
    return ("#!/usr/bin/env bash\n# vLLM: base model + LoRA adapter hot-loaded (written by a slayer `serve` job).\n"
            "# More adapters at runtime: POST /v1/load_lora_adapter {\"lora_name\": ..., \"lora_path\": ...}\n"
            "set -euo pipefail\nexport VLLM_ALLOW_RUNTIME_LORA_UPDATING=True\nexec " + cmd + "\n")
