#!/usr/bin/env bash
# GPU smoke test of the campaign's chain on the tiny model, on one CUDA GPU:
#   1. train.sft: 4-bit QLoRA (bitsandbytes NF4) + DoRA r=16 (rsLoRA), gradient checkpointing, 4 steps, two
#      checkpoints, each gated IN PROCESS (the training model scores its own checkpoints, base once);
#   2. a gate job on the last checkpoint with the base loaded in 4-bit (its fingerprint must equal the
#      in-process one: NF4 + bf16);
#   3. merge.sweep of the adapter (one scale, one TIES candidate) and 4. export.gguf of the ×0.5 subject (its
#      files' size beside `slayer plan`'s disk estimate).
# Every step prints its peak GPU memory (torch.cuda.max_memory_allocated) beside `slayer plan`'s estimate.
#
#   bash bench/gpu_smoke.sh [OUT_DIR]        # from the repository root; a few minutes; prints a summary
#
# Needs torch with CUDA, transformers 5, peft, trl, accelerate, datasets, bitsandbytes, pydantic, llama-cpp-python
# (export). A box without internet takes the missing ones as wheels in .whl/ (installed into /tmp/site first),
# fetched where pip works, e.g. for a Python 3.12 box:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl bitsandbytes trl==1.16.0 peft==0.21.2 datasets dill multiprocess pydantic pydantic-core \
#     annotated-types typing-inspection
set -euo pipefail
OUT_DIR=${1:-${OUT:-/tmp/gpu-smoke}}
mkdir -p "$OUT_DIR"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 SLAYER_TINY_CACHE=$OUT_DIR/tiny-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

python3 - "$OUT_DIR" <<'EOF'
import importlib.util, json, sys, time
from pathlib import Path

import torch, transformers, peft, trl, bitsandbytes

from engine.jobs import parse_spec
from engine.plan import plan_export, plan_training, this_machine
from engine.plan.machine import GIB
from engine.plan.memory import gate_inference_bytes, weight_bytes
from engine.plan.shape import model_shape
from engine.runner import run_job

out = Path(sys.argv[1])
assert torch.cuda.is_available(), "no CUDA device"
print(f"torch {torch.__version__} ({torch.cuda.get_device_name(0)}), transformers {transformers.__version__}, "
      f"peft {peft.__version__}, trl {trl.__version__}, bitsandbytes {bitsandbytes.__version__}")
root = Path.cwd()
psc = {"polish_psc": str(root / "assets/examples/psc.jsonl")}
rows, checks = [], {}


def step(label, spec, estimate_gib=None):
    """Run one job in this process; its peak GPU memory and the plan's estimate go in the table."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    run_dir = out / label
    start = time.time()
    status = run_job(parse_spec(spec, label), run_dir)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    peak = torch.cuda.max_memory_allocated() / GIB
    rows.append((label, status, peak, estimate_gib, time.time() - start))
    if status != "succeeded":
        print(f"{label}: {status}: {events[-1].get('error')}")
    return status, events


train = {"kind": "train.sft", "name": "gpu-smoke", "experiment": "gpu-smoke", "model": "tiny:qwen3",
         "data": str(root / "assets/examples/chat.jsonl"), "quantization": "4bit",
         "adapter": {"method": "dora", "rank": 16, "use_rslora": True},
         "training": {"max_steps": 4, "save_steps": 2, "batch_size": 4, "max_length": 256, "logging_steps": 1,
                      "learning_rate": 1e-3, "gradient_checkpointing": True},
         "gates": {"gates": ["polish_psc"], "files": psc, "limit": 8, "device": "cuda", "mode": "in_process"}}
plan = plan_training(parse_spec(train, "plan").config, this_machine())
status, events = step("train", train, plan.need_gib - plan.memory.runtime / GIB)
ckpts = [e for e in events if e["type"] == "checkpoint"]
gated = [e for e in events if e["type"] == "gate_result"]
for c in ckpts:
    print(f"checkpoint step {c['step']}: {c['adapter']['method']} r={c['adapter']['rank']} "
          f"quantization={c['adapter']['quantization']}")
for g in gated:
    print(f"in-process gate {g['gate']} on {g['subject']['name']}: {g['metrics']} fingerprint dtype "
          f"{g['fingerprint'].get('dtype')} quantization {g['fingerprint'].get('quantization')}")
checks["training succeeded"] = status == "succeeded"
checks["two 4-bit DoRA checkpoints"] = len(ckpts) == 2 and all(c["adapter"]["quantization"] == "4bit" for c in ckpts)
checks["both checkpoints and the base gated in process"] = len(gated) == 3 and sum(
    g["subject"]["kind"] == "base" for g in gated) == 1
last = ckpts[-1]["path"] if ckpts else None

if last:
    shape = model_shape(str(Path(ckpts[-1]["subject"]["recipe"]["model"])))
    gate = {"kind": "gate", "name": "gate-4bit", "gates": ["polish_psc"], "files": psc, "limit": 8, "device": "cuda",
            "subjects": [{"name": "gpu-smoke-ckpt-4", "kind": "checkpoint", "model": ckpts[-1]["subject"]["recipe"]["model"],
                          "adapter": last, "quantization": "4bit"}]}
    estimate = (weight_bytes(shape, "4bit", "bfloat16") + gate_inference_bytes(shape, 8, 2)) / GIB
    status, events = step("gate-4bit", gate, estimate)
    fp = [e["fingerprint"] for e in events if e["type"] == "gate_result"]
    mine = [g for g in gated if g["subject"]["id"] == ckpts[-1]["subject"]["id"]]
    same = {k: v for k, v in fp[0].items() if k != "batch_size"} == \
        {k: v for k, v in mine[0]["fingerprint"].items() if k != "batch_size"} if fp and mine else False
    print(f"4-bit gate fingerprint: {fp[0] if fp else None}")
    checks["4-bit gate ran"] = status == "succeeded" and bool(fp) and fp[0].get("quantization") == "nf4"
    checks["4-bit gate and in-process fingerprints agree"] = same
    merge = {"kind": "merge.sweep", "name": "merge", "model": ckpts[-1]["subject"]["recipe"]["model"], "adapter": last,
             "scales": [0.5], "variants": [{"method": "ties", "density": 0.5}],
             "gate": {"suite": "", "gates": ["polish_psc"], "files": psc, "limit": 8, "device": "cuda"}}
    status, _ = step("merge", merge)
    checks["merge succeeded"] = status == "succeeded"
    if importlib.util.find_spec("llama_cpp"):
        export = {"kind": "export.gguf", "name": "export", "model": ckpts[-1]["subject"]["recipe"]["model"],
                  "adapter": last, "scale": 0.5, "quants": ["Q8_0"], "device": "cuda"}
        status, _ = step("export", export)
        checks["export succeeded"] = status == "succeeded"
        planned = plan_export(parse_spec(export, "plan").config, this_machine())
        written = sum(f.stat().st_size for f in (out / "export" / "outputs").rglob("*")
                      if f.suffix in (".gguf", ".safetensors"))
        # printed, not checked: on the tiny model the tokenizer is a large share of each file
        print(f"export disk: planned {planned.disk_gib:.4f} GiB, written {written / GIB:.4f} GiB")
    else:
        print("export skipped: llama-cpp-python is not installed")

print(f"{'step':10} {'status':10} {'peak GPU GiB':>13} {'plan GiB':>9} {'seconds':>8}")
for label, status, peak, estimate, seconds in rows:
    print(f"{label:10} {status:10} {peak:13.3f} {'' if estimate is None else f'{estimate:.3f}':>9} {seconds:8.1f}")
print("checks:", json.dumps(checks))
(out / "summary.json").write_text(json.dumps({"checks": checks, "steps": rows}, indent=1))
sys.exit(0 if all(checks.values()) else 1)
EOF
