"""Peak memory of checkpoint gating, per mode: a CPU miniature trains 4 steps (2 checkpoints), each checkpoint and
the base gated on core-shaped gates offline (polish_psc, polish_8tags, polish_belebele and the generated-answer
polish_psc_regex from tests/data, style_pref on its shipped fixture: likelihood, generation and style scorers;
long-generation gates such as ifeval take minutes per subject on a busy CPU and are left out), and the whole process tree's resident memory is sampled every 20 ms. The ratio is to the
same training without gating. Goal: in_process ≤ 1.1×.

    python bench/gating_memory.py [--hidden 384] [--layers 4] [--limit 4]
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
GATE_FILES = {"polish_psc": "tests/data/gates/psc.jsonl", "polish_8tags": "tests/data/gates/8tags.jsonl",
              "polish_belebele": "tests/data/gates/belebele.jsonl", "polish_psc_regex": "tests/data/gates/psc.jsonl"}


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total


def run(spec: dict, run_dir: Path) -> dict:
    from engine.jobs import dumps_toml

    run_dir.mkdir(parents=True)
    path = run_dir.with_suffix(".toml")
    path.write_text(dumps_toml(spec), encoding="utf-8")
    # a fixed mmap threshold: freed tensors leave the resident set (engine.plan.measure says why)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_MMAP_THRESHOLD_": "65536"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "engine", "run", str(path), "--run-dir", str(run_dir)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return {"status": events[-1].get("status"), "error": events[-1].get("error"), "peak": peak,
            "seconds": time.perf_counter() - start, "gated": sum(e["type"] == "gate_result" for e in events)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--limit", type=int, default=4)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"load at start: {os.getloadavg()}")
    from engine.tiny.build import tiny_model_dir

    model = str(tiny_model_dir(arch="qwen3", seed=0, hidden_size=args.hidden, intermediate_size=3 * args.hidden,
                               num_layers=args.layers, num_heads=8, num_kv_heads=4, head_dim=args.hidden // 8,
                               vocab_size=8000))
    gates = {"gates": [*GATE_FILES, "style_pref"], "fixtures": True,
             "files": {k: str(ROOT / v) for k, v in GATE_FILES.items()}, "limit": args.limit, "device": "cpu",
             "batch_size": 8}
    base = {"kind": "train.sft", "model": model, "data": str(ROOT / "assets/examples/chat.jsonl"),
            "adapter": {"method": "dora", "rank": 16, "use_rslora": True},
            "training": {"max_steps": 4, "save_steps": 2, "batch_size": 4, "max_length": 256, "logging_steps": 1,
                         "gradient_checkpointing": False, "warmup": 0}}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("none", "in_process", "process"):
            spec = dict(base, experiment=f"bench-{mode}")
            if mode != "none":
                spec["gates"] = dict(gates, mode=mode)
            results[mode] = run(spec, Path(tmp) / mode)
    plain = results["none"]["peak"]
    print(f"miniature: qwen3 hidden {args.hidden}, {args.layers} layers, vocab 8000; DoRA r=16; 4 steps, "
          f"2 checkpoints; gates {', '.join(gates['gates'])} (limit {args.limit})")
    for mode, r in results.items():
        print(f"{mode:11} peak {r['peak'] / 2**20:7.0f} MiB  ×{r['peak'] / plain:.2f}  {r['seconds']:5.1f} s  "
              f"{r['gated']} gate results  {r['status']} {r['error'] or ''}")
    print(f"load at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
