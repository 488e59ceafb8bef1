"""Self-replay throughput: the shipped prompt grid (310 prompts) answered by the tiny Qwen3 through hf `generate`
and through an OpenAI-compatible llama.cpp server with parallel slots, in the same run, both through
`data.replay`'s real path (guard, generation, truncation and boilerplate checks, writing).

    python bench/replay.py [--max-new-tokens 64] [--batch-size 16] [--parallel 4] [--prompts 310]
                           [--threads 1] [--llama-server PATH]

The server: llama.cpp's `llama-server` (PATH or --llama-server) started on loopback with `--parallel N`
and continuous batching, serving the tiny model as an f16 GGUF (tests/llama_server.py converts it); without
the binary, llama-cpp-python's server (one request at a time) stands in and the table says so. Each server
run sends every prompt (no reply cache). Kept = answers written after the empty/truncation/boilerplate/guard
checks; a random tiny model rarely stops by itself, so most of its answers hit the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engine.data.replay import ReplayConfig, build_replay, shipped_prompts  # noqa: E402
from engine.datafiles import read_rows  # noqa: E402
from engine.data.sources import GRID  # noqa: E402


def guard_files() -> list[str]:
    """The shipped fixtures of the general gates that carry one (offline: their hub splits are not here)."""
    from engine.gates.spec import GATES_DIR, load_gate

    gates = [load_gate(n) for n in ("en_chat", "ifeval", "xstest")]
    return [f"{g.name}={GATES_DIR / g.dataset.fixture}" for g in gates]


def run(model: str, prompts: str, quotas: dict, tmp: Path, label: str, **self_replay) -> dict:
    config = ReplayConfig(quotas=quotas, guard_against=guard_files(), seed=0,
                          self_replay={"model": model, "prompts": prompts, "licence": "apache-2.0", **self_replay})
    start = time.perf_counter()
    report = build_replay(config, tmp / f"{label}.jsonl", tmp / f"{label}.json")
    wall = time.perf_counter() - start
    sr = report["self_replay"]
    return {"path": label, "prompts": sr["prompts"], "wall_s": round(wall, 1),
            "prompts_per_s": round(sr["prompts"] / wall, 2), "hit_limit": sr["hit_limit"], "kept": sr["kept"],
            "kept_share": round(sr["kept"] / sr["prompts"], 3), "dropped": sr["dropped"],
            "boilerplate": report["boilerplate"]["dropped"], "overlap": report["guard"]["dropped"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16, help="hf generate batch")
    ap.add_argument("--parallel", type=int, nargs="+", default=[4], help="server slots = requests in flight "
                                                                       "(one server run each)")
    ap.add_argument("--prompts", type=int, default=310, help="the first N of the shipped grid")
    ap.add_argument("--llama-server", default=shutil.which("llama-server"), help="llama.cpp's server binary")
    ap.add_argument("--threads", type=int, default=1, help="torch threads and llama-server threads")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    import torch

    torch.set_num_threads(args.threads)
    from engine.tiny.build import tiny_model_dir
    from llama_server import llama_server, tiny_gguf

    model, gguf = str(tiny_model_dir("qwen3")), tiny_gguf()
    rows = read_rows(shipped_prompts())[:args.prompts]
    quotas = {s: sum(r["skill"] == s for r in rows) for s in GRID}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prompts = tmp / "prompts.jsonl"
        prompts.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        results = [run(model, str(prompts), quotas, tmp, "hf generate", max_new_tokens=args.max_new_tokens,
                       batch_size=args.batch_size)]
        for parallel in args.parallel if args.llama_server else [1]:
            server = llama_server(gguf, 512 + args.max_new_tokens, args.llama_server, parallel, args.threads)
            label = f"llama-server --parallel {parallel}" if args.llama_server else "llama_cpp.server (1 slot)"
            with server as url:
                results.append(run(model, str(prompts), quotas, tmp, label, max_new_tokens=args.max_new_tokens,
                                   endpoint={"url": url, "concurrency": parallel}))
    for r in results[1:]:
        r["vs_hf"] = round(r["prompts_per_s"] / results[0]["prompts_per_s"], 2)
    for r in results:
        print(json.dumps(r))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
