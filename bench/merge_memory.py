"""Peak memory of a streamed merge: a random Qwen3-shaped model of M bytes in several shards + a LoRA adapter.

    python bench/merge_memory.py [--layers 16] [--hidden 1536] [--shards 4] [--dtype bfloat16]

The merge runs in a fresh child process; it reports the child's peak RSS (VmHWM), the RSS it had
after importing torch and safetensors (a constant, not the merge's), and the goal: peak ≤ 1.3 × the
largest shard + the adapter, far below M. A second child holds every tensor at once, for contrast.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch, safetensors.torch
from engine.merge.adapter import load_adapter
from engine.merge.stream import merge_model
from engine.merge.shards import shard_files
def status_kib(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
baseline = status_kib("VmRSS:")
t = time.perf_counter()
if sys.argv[2] == "stream":
    merge_model(sys.argv[3], load_adapter(sys.argv[4]), sys.argv[5], scale=0.5)
else:  # everything in memory at once, as a load-merge-save of the whole model would hold it
    tensors = {}
    for shard in shard_files(sys.argv[3]):
        tensors.update({k: v.clone() for k, v in safetensors.torch.load_file(shard).items()})
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec
print(json.dumps({"baseline_kib": baseline, "peak_kib": status_kib("VmHWM:"),
                  "seconds": time.perf_counter() - t}))
"""


def build(root: Path, layers: int, hidden: int, shards: int, dtype: str, vocab: int = 32000, rank: int = 16):
    """Random weights with Qwen3 names, split into `shards` files, plus a LoRA adapter on every linear layer."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    dt = getattr(torch, dtype)
    inter, kv = hidden * 8 // 3 // 64 * 64, hidden // 4
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "lm_head.weight": (vocab, hidden),
              "model.norm.weight": (hidden,)}
    linear = {"self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (kv, hidden), "self_attn.v_proj": (kv, hidden),
              "self_attn.o_proj": (hidden, hidden), "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden),
              "mlp.down_proj": (hidden, inter)}
    for i in range(layers):
        for name, shape in linear.items():
            shapes[f"model.layers.{i}.{name}.weight"] = shape
        shapes[f"model.layers.{i}.input_layernorm.weight"] = (hidden,)
        shapes[f"model.layers.{i}.post_attention_layernorm.weight"] = (hidden,)
    names = list(shapes)
    per = math.ceil(len(names) / shards)
    base = root / "base"
    base.mkdir()
    weight_map = {}
    for s in range(shards):
        chunk = names[s * per:(s + 1) * per]
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: torch.randn(shapes[n]).to(dt) for n in chunk}, str(base / file), metadata={"format": "pt"})
        weight_map.update({n: file for n in chunk})
    (base / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (base / "config.json").write_text(json.dumps({"model_type": "qwen3", "hidden_size": hidden}))
    adapter = root / "adapter"
    adapter.mkdir()
    lora = {}
    for i in range(layers):
        for name, (out_f, in_f) in linear.items():
            key = f"base_model.model.model.layers.{i}.{name}"
            lora[f"{key}.lora_A.weight"] = torch.randn(rank, in_f).to(dt)
            lora[f"{key}.lora_B.weight"] = torch.randn(out_f, rank).to(dt) * 0.01
    save_file(lora, str(adapter / "adapter_model.safetensors"))
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank}))
    return base, adapter


def child(mode: str, base: Path, adapter: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), mode, str(base), str(adapter), str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=1536)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        base, adapter = build(root, args.layers, args.hidden, args.shards, args.dtype)
        model_bytes = sum(p.stat().st_size for p in base.glob("*.safetensors"))
        largest = max(p.stat().st_size for p in base.glob("*.safetensors"))
        adapter_bytes = (adapter / "adapter_model.safetensors").stat().st_size
        print(f"built in {time.perf_counter() - t:.1f} s: M = {model_bytes / 2**20:.0f} MiB in {args.shards} shards "
              f"(largest {largest / 2**20:.0f} MiB), adapter {adapter_bytes / 2**20:.1f} MiB, {args.dtype}")
        goal = 1.3 * largest + adapter_bytes
        for mode in ("stream", "load-all"):
            r = child(mode, base, adapter, root / "merged")
            peak, extra = r["peak_kib"] * 1024, (r["peak_kib"] - r["baseline_kib"]) * 1024
            print(f"{mode:9s} peak RSS {peak / 2**20:7.0f} MiB = {r['baseline_kib'] / 1024:.0f} MiB after imports "
                  f"+ {extra / 2**20:6.0f} MiB ({extra / model_bytes:.2f} M, {extra / goal:.2f} × goal "
                  f"{goal / 2**20:.0f} MiB) in {r['seconds']:.1f} s")


if __name__ == "__main__":
    from machine_load import reported_load

    with reported_load():
        main()
