"""Peak memory of merge.sweep (one TIES candidate), CPT→SFT stacking and export verification on a miniature of
Qwen3.5's published layout scaled to ~2 GB of bfloat16 weights in ≥ 8 shards, with the 27B extrapolation.

    python bench/layout_memory.py [--hidden 2048] [--intermediate 6144] [--layers 18] [--shards 10]

The miniature is model.tiny with layout = "published" (Qwen3_5ForConditionalGeneration, vision tower,
MTP head, bf16 shards + index). Each step runs in a fresh child process that reports its own peak RSS
(VmHWM) and the RSS it had after its imports (the fixed overhead, not the step's):
  merge   the `merge.sweep` job with one TIES candidate (d 0.5), gates skipped: a rank-16 LoRA on every
          text linear layer
  stack   engine.train.stack.build_stack_base, what train.sft runs before training on a CPT adapter
  verify  export verification's HF side (engine.export.verify.hf_reference on the shipped probes)
llama.cpp's own processes are reported separately: the converter (a subprocess: its ru_maxrss, from a
launcher too small to matter) and Q8_0 quantisation and the GGUF side of verification (llama-cpp-python
in a child: VmHWM). Goal: step peak ≤ 1.3 × largest shard + the fixed overhead.

27B: each step holds the adapter plus a bounded set of float32 tensors of its largest unit; the script
prints that memory model for the miniature beside the measurement, and for Qwen3.5-27B's published
config (below) at 54 GB bf16.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GiB, MiB = 2**30, 2**20
# Qwen3.5-27B's text config as published (config.json, text_config)
Q27 = dict(hidden=5120, intermediate=17408, layers=64, heads=24, kv_heads=4, head_dim=256, lin_k_heads=16,
           lin_v_heads=48, lin_head_dim=128, vocab=248320)

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch, transformers, safetensors, numpy
def kib(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
mode, base, adapter, out = sys.argv[2:6]
# the step's code is imported before the baseline: fixed overhead, whatever the model's size
import engine.jobs, engine.merge.job, engine.merge.stream, engine.train.stack, engine.export.verify
import transformers.models.qwen3_5.modeling_qwen3_5
if mode in ("quantize", "gguf"):
    import llama_cpp
baseline = kib("VmRSS:")
t = time.perf_counter()
if mode == "merge":
    from engine.jobs import parse_spec
    from engine.runner import run_job
    spec = parse_spec({"kind": "merge.sweep", "model": base, "adapter": adapter, "scales": [], "skip_gates": True,
                       "variants": [{"method": "ties", "density": 0.5}]}, "bench")
    assert run_job(spec, out) == "succeeded"
elif mode == "stack":
    from pathlib import Path
    from engine.train.stack import build_stack_base, read_meta
    build_stack_base(adapter, read_meta(adapter), Path(out))
elif mode == "verify":
    from engine.export.verify import hf_reference, read_probes
    texts, _ = read_probes()
    ref = hf_reference(base, texts, 64)
    numpy.savez(out, *ref.logits, ids=numpy.array(json.dumps(ref.token_ids)))
elif mode == "quantize":
    from engine.export.quantize import quantize
    quantize(base, out, "Q8_0")
elif mode == "gguf":
    from engine.export.verify import Reference, fidelity, read_probes
    texts, _ = read_probes()
    saved = numpy.load(adapter)
    ids = json.loads(str(saved["ids"]))
    r = fidelity(base, Reference(texts, ids, [saved[f"arr_{i}"] for i in range(len(ids))]))
    print(json.dumps(r), file=sys.stderr)
print(json.dumps({"baseline_kib": baseline, "peak_kib": kib("VmHWM:"), "seconds": time.perf_counter() - t}))
"""

LAUNCHER = ("import resource, subprocess, sys, json; subprocess.run(sys.argv[1:], check=True, "
            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            "print(json.dumps({'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")


def child(mode: str, *paths) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), mode, *map(str, paths)], capture_output=True,
                          text=True)
    if done.returncode:
        sys.exit(f"{mode} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_adapter(base: Path, out: Path, rank: int = 16) -> Path:
    """A rank-`rank` LoRA on every text linear layer, named as PEFT names them on the loaded text model,
    with the metadata train.cpt writes (so train.sft can stack on it)."""
    import torch
    from safetensors.torch import save_file

    from engine.merge.layout import checkpoint_layout
    from engine.merge.shards import read_header, shard_files
    from engine.train.stack import write_meta

    layout = checkpoint_layout(base)
    shapes = {n: info["shape"] for s in shard_files(base) for n, info in read_header(s)[1].items()
              if n != "__metadata__"}
    torch.manual_seed(0)
    lora = {}
    for stored, shape in shapes.items():
        text = layout.text_name(stored)
        if text and ".layers." in text and len(shape) == 2:
            key = "base_model.model." + text.removesuffix(".weight")
            lora[f"{key}.lora_A.weight"] = torch.randn(rank, shape[1]) * 0.01
            lora[f"{key}.lora_B.weight"] = torch.randn(shape[0], rank) * 0.01
    out.mkdir(parents=True)
    save_file(lora, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank}))
    write_meta(out, {"training": "cpt", "stack": ["cpt"], "base_model": str(base), "model": str(base)})
    return out


def units(hidden, intermediate, layers, heads, kv_heads, head_dim, lin_k_heads, lin_v_heads, lin_head_dim, vocab):
    """Bytes of what the memory model says each step holds at its peak (beyond the fixed overhead)."""
    attn = hidden * heads * head_dim * 2 + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
    k, v = lin_k_heads * lin_head_dim, lin_v_heads * lin_head_dim
    linear = hidden * (2 * k + v) + 2 * hidden * v
    layer = max(attn, linear) + 3 * hidden * intermediate
    adapter = layers * 4 * 16 * (8 * hidden + 3 * intermediate)  # rank-16 float32 A and B, every linear layer
    biggest = hidden * intermediate  # the largest adapted tensor
    return {"merge": adapter + 4 * 4 * biggest,  # W, τ, W + λτ in float32, TIES' |τ| copy and mask
            "stack": adapter + 4 * 4 * biggest,
            # one decoder layer in bf16 + its largest linear layer in float32 + 4 probes' activations, or the
            # bf16 head + a float32 slice of rows; plus the logits of the 16 shipped probes × 64 tokens
            "verify": max(2 * layer + 4 * biggest + 4 * 4 * 64 * intermediate * 4,
                          2 * vocab * hidden + 4 * 16384 * hidden) + 4 * 16 * 64 * vocab}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--intermediate", type=int, default=6144)
    ap.add_argument("--layers", type=int, default=18)
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--vocab", type=int, default=8192)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    sys.path.insert(0, str(ROOT))
    from engine.export.converter import HF_SCRIPT, PRE_TOKENIZER_SHIM, fetch_converters
    from engine.tiny.build import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        dims = dict(hidden_size=args.hidden, intermediate_size=args.intermediate, num_layers=args.layers,
                    num_heads=16, num_kv_heads=4, head_dim=128, vocab_size=args.vocab)
        base = build_tiny_model(root / "base", arch="qwen3_5", layout="published", shards=args.shards, **dims)
        adapter = write_adapter(base, root / "cpt-adapter")
        files = sorted(base.glob("*.safetensors"))
        size, largest = sum(f.stat().st_size for f in files), max(f.stat().st_size for f in files)
        print(f"built in {time.perf_counter() - t:.0f} s: {size / GiB:.2f} GiB bf16 in {len(files)} shards "
              f"(largest {largest / MiB:.0f} MiB), adapter {(adapter / 'adapter_model.safetensors').stat().st_size / MiB:.0f} MiB")
        mini = units(args.hidden, args.intermediate, args.layers, 16, 4, 128, 4, 16, 128, args.vocab)
        big = units(**Q27)
        results = {"merge": child("merge", base, adapter, root / "sweep"),
                   "stack": child("stack", base, adapter, root / "stack_base"),
                   "verify": child("verify", base, root / "ref.npz", root / "ref.npz")}
        print(f"\n{'step':7s} {'peak':>9s} {'fixed':>7s} {'step':>8s} {'÷ shard':>8s} {'÷ model':>8s} {'goal':>6s} "
              f"{'modelled':>9s}  27B (54 GB bf16)")
        for step, r in results.items():
            peak, fixed = r["peak_kib"] * 1024, r["baseline_kib"] * 1024
            extra = peak - fixed
            print(f"{step:7s} {peak / MiB:6.0f} MiB {fixed / MiB:4.0f} MiB {extra / MiB:5.0f} MiB "
                  f"{extra / largest:7.2f}× {peak / size:7.2f}× {'met' if extra <= 1.3 * largest else 'MISSED':>6s} "
                  f"{mini[step] / MiB:6.0f} MiB  {fixed / GiB + big[step] / GiB:.1f} GiB "
                  f"(= fixed + {big[step] / GiB:.1f} GiB) in {r['seconds']:.0f} s")

        print("\nllama.cpp's own processes (reported separately):")
        llama = fetch_converters()
        f16, q8 = root / "m-F16.gguf", root / "m-Q8_0.gguf"
        env = dict(os.environ, PYTHONPATH=str(llama / "gguf-py"))
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-c", PRE_TOKENIZER_SHIM,
                               str(llama / HF_SCRIPT), "qwen35", str(root / "pre.json"), str(base), "--outtype",
                               "f16", "--outfile", str(f16)], capture_output=True, text=True, env=env, check=True)
        conv = json.loads(done.stdout)["peak_kib"] * 1024
        print(f"  convert_hf_to_gguf (f16): peak {conv / MiB:.0f} MiB = {conv / largest:.2f}× shard in "
              f"{time.perf_counter() - t:.0f} s")
        for step, args_ in (("quantize", (f16, "-", q8)), ("gguf", (q8, root / "ref.npz", "-"))):
            r = child(step, *args_)
            print(f"  {step:8s} (Q8_0): peak {r['peak_kib'] / 1024:.0f} MiB (fixed {r['baseline_kib'] / 1024:.0f} MiB)"
                  f" in {r['seconds']:.0f} s")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
