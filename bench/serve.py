"""Serving latency and throughput with bench.serve, and its client's overhead against a bare httpx loop.

    python bench/serve.py [--gguf F16.gguf Q8_0.gguf | --layers 8 --hidden 512] [--max-tokens 64]

Serves each GGUF file (default: a random 8-layer, 512-wide Qwen3 with the tiny model's tokenizer, converted to
F16 and quantised to Q8_0; pass the demo's export with --gguf) with llama.cpp's llama-server (--binary PATH)
or llama-cpp-python's server on 127.0.0.1 under identical settings (1 thread, 8 slots) and prints
bench.serve's table (TTFT p50/p95, decode tok/s, output tok/s, req/s). Then, on the first file, the same
requests go through bench.serve's client and through a bare httpx streaming loop (threads, one client each),
alternating, and the output tokens/s of both are compared (goal: within 5 %).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def model_files(root: Path, layers: int, hidden: int) -> list[Path]:
    """A random Qwen3 of this size with the tiny model's tokenizer (bench/export_time.py builds it), as F16 and
    Q8_0: big enough that the server's per-token time, not the client's, is what is measured."""
    from export_time import build

    from engine.export.converter import HF_SCRIPT, converter_dir, run_converter
    from engine.export.quantize import quantize

    model, _ = build(root, layers, hidden)
    f16 = root / "qwen3-F16.gguf"
    run_converter(converter_dir(None), HF_SCRIPT, [str(model), "--outfile", str(f16), "--outtype", "f16"],
                  root / "convert.log")
    return [f16, quantize(f16, root / "qwen3-Q8_0.gguf", "Q8_0")]


def httpx_loop(url: str, model: str, prompts: list[str], max_tokens: int, concurrency: int) -> tuple[int, float]:
    """(output tokens, wall seconds): the same streamed requests with nothing but httpx and a thread per slot."""
    import httpx

    todo = list(enumerate(prompts))
    lock, tokens = threading.Lock(), [0]

    def worker() -> None:
        with httpx.Client(timeout=300) as client:
            while True:
                with lock:
                    if not todo:
                        return
                    _, prompt = todo.pop(0)
                body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                        "temperature": 0.0, "stream": True, "ignore_eos": True,
                        "min_tokens": max_tokens}
                for attempt in (0, 1):  # like the client: a keep-alive connection closed by the server, once
                    n = 0
                    try:
                        with client.stream("POST", f"{url}/chat/completions", json=body) as r:
                            for line in r.iter_lines():
                                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                                    n += any((c.get("delta") or {}).get("content") is not None
                                             for c in json.loads(line[5:]).get("choices") or ())
                        break
                    except httpx.RemoteProtocolError:
                        if attempt:
                            raise
                with lock:
                    tokens[0] += n

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tokens[0], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", nargs="*", default=None)
    parser.add_argument("--binary", default="llama_cpp.server",
                        help="llama.cpp's llama-server (a path), or llama_cpp.server (llama-cpp-python's)")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=3, help="client-vs-httpx rounds (alternating)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")

    from engine.serve.bench import load_prompts, summarise
    from engine.serve.client import Endpoint, run_requests
    from engine.serve.config import ServerSettings
    from engine.serve.launch import free_port, running_server

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    files = [Path(f) for f in args.gguf] if args.gguf else model_files(tmp, args.layers, args.hidden)
    settings = ServerSettings(binary=args.binary, ctx_size=8 * 512, gpu_layers=0, threads=1, parallel=8)
    prompts, _ = load_prompts(None)
    print(f"{len(prompts)} prompts, {args.max_tokens} output tokens each, server {args.binary}, 1 thread, 8 slots")
    print(f"{'file':<22} {'c':>2} {'TTFT p50 ms':>11} {'p95 ms':>7} {'decode tok/s':>12} {'out tok/s':>9} {'req/s':>6}")
    overhead = []
    for i, f in enumerate(files):
        with running_server(settings, f, f.stem, tmp / f"server-{i}.log", port=free_port()) as (url, _, _):
            ep = Endpoint(url, f.stem)
            bodies = [ep.body(p, args.max_tokens, True) for p in prompts]
            run_requests(ep, bodies[:2], 1)
            for c in args.concurrency:
                s = summarise(*run_requests(ep, bodies, c))
                print(f"{f.name:<22} {c:>2} {s['ttft_p50_ms']:>11.1f} {s['ttft_p95_ms']:>7.1f} "
                      f"{s['decode_tok_s']:>12.1f} {s['output_tok_s']:>9.1f} {s['req_s']:>6.2f}")
            if i == 0:
                for c in (1, 4):
                    ours, bare = [], []
                    for _ in range(args.rounds):
                        s = summarise(*run_requests(ep, bodies, c))
                        ours.append(s["output_tok_s"])
                        n, wall = httpx_loop(url, f.stem, prompts, args.max_tokens, c)
                        bare.append(n / wall)
                    overhead.append((c, statistics.median(ours), statistics.median(bare)))
    print("\nclient overhead (median output tok/s over rounds, same requests, alternating):")
    for c, ours, bare in overhead:
        print(f"  c={c}: bench.serve client {ours:.1f}, bare httpx {bare:.1f}, "
              f"difference {(ours / bare - 1) * 100:+.1f} %")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
