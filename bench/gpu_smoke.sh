#!/usr/bin/env bash
# GPU smoke test of the training jobs: 4-bit QLoRA (bitsandbytes NF4) + DoRA SFT of the tiny model for a few
# steps on a CUDA GPU, with its one checkpoint gated on the GPU by a gate job while training runs.
#
#   bash bench/gpu_smoke.sh [OUT_DIR]        # from the repository root; ~2 minutes; prints a summary
#
# Needs torch with CUDA, transformers 5, peft, trl, accelerate, datasets, bitsandbytes, pydantic. A box
# without internet takes the missing ones as wheels in .whl/ (installed into /tmp/site first), fetched
# where pip works, e.g. for a Python 3.12 box:
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
import json, subprocess, sys, time
from pathlib import Path

import torch, transformers, peft, trl, bitsandbytes

from engine.jobs import dumps_toml
from engine.tiny.build import tiny_model_dir

out = Path(sys.argv[1])
assert torch.cuda.is_available(), "no CUDA device"
print(f"torch {torch.__version__} ({torch.cuda.get_device_name(0)}), transformers {transformers.__version__}, "
      f"peft {peft.__version__}, trl {trl.__version__}, bitsandbytes {bitsandbytes.__version__}")
model = str(tiny_model_dir(arch="qwen3", seed=0))

chat, psc = out / "chat.jsonl", out / "psc.jsonl"
qa = [("Ile to dwa plus dwa?", "Cztery."), ("Podaj stolicę Polski.", "Warszawa."), ("Jak się masz?", "Dobrze.")]
chat.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
                                   ensure_ascii=False) + "\n" for q, a in qa * 8), encoding="utf-8")
psc.write_text("".join(json.dumps({"extract_text": f"Tekst {i} o kotach.", "summary_text": "O kotach.",
                                   "label": i % 2}, ensure_ascii=False) + "\n" for i in range(16)), encoding="utf-8")
spec = out / "job.toml"
spec.write_text(dumps_toml({
    "kind": "train.sft", "name": "gpu-smoke", "model": model, "data": str(chat), "quantization": "4bit",
    "adapter": {"method": "dora", "rank": 16, "use_rslora": True},
    "training": {"max_steps": 6, "save_steps": 6, "batch_size": 4, "logging_steps": 1, "learning_rate": 1e-3,
                 "gradient_checkpointing": True},
    "gates": {"gates": ["polish_psc"], "files": {"polish_psc": str(psc)}, "limit": 16, "device": "cuda"}}))

run_dir = out / "run"
start = time.time()
proc = subprocess.run([sys.executable, "-m", "engine", "run", str(spec), "--run-dir", str(run_dir)])
events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
print(f"engine run exited {proc.returncode} after {time.time() - start:.1f} s; status: {events[-1].get('status')} "
      f"{events[-1].get('error', '')}")
ckpts = [e for e in events if e["type"] == "checkpoint"]
gates = [e for e in events if e["type"] == "gate_result"]
metrics = {}
for e in events:
    if e["type"] == "metric":
        metrics[e["key"]] = e["value"]
for c in ckpts:
    print(f"checkpoint step {c['step']}: {c['adapter']['method']} r={c['adapter']['rank']} "
          f"quantization={c['adapter']['quantization']} targets={c['adapter']['targets']}")
for g in gates:
    print(f"gate {g['gate']} on {g['subject']['name']}: {g['metrics']} (n={g['n']}, backend "
          f"{g['fingerprint'].get('backend')}, dtype {g['fingerprint'].get('dtype')})")
print("last metrics:", {k: round(v, 4) for k, v in metrics.items() if k in
                         ("loss", "grad_norm", "lr", "tokens_per_s", "gpu_mem", "tokens")})
checks = {
    "succeeded": events[-1].get("status") == "succeeded",
    "one 4-bit DoRA checkpoint": len(ckpts) == 1 and ckpts[0]["adapter"]["quantization"] == "4bit"
                                 and ckpts[0]["adapter"]["method"] == "dora",
    "checkpoint gated": any(g["subject"]["id"] == ckpts[0]["subject"]["id"] for g in gates) if ckpts else False,
    "gpu memory reported": "gpu_mem" in metrics,
}
print("checks:", json.dumps(checks))
(out / "summary.json").write_text(json.dumps({"checks": checks, "metrics": metrics}, indent=1))
sys.exit(0 if all(checks.values()) else 1)
EOF
