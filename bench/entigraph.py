"""EntiGraph synthesis throughput: synthetic tokens per minute against a local OpenAI-compatible server,
teacher concurrency 1 vs 8 in the same run.

    python bench/entigraph.py [--chunks 24] [--rounds 2] [--url http://127.0.0.1:PORT/v1]

Without --url it starts llama-cpp-python's server on the tiny Qwen3 GGUF (tests/llama_server.py). The
corpus is cut from assets/corpus/pl.txt (whitespace tokens, 64 per chunk); replies are constrained to
JSON (structured = "json_object") so they parse. Every run starts with an empty reply cache and the
requests are seeded, so both concurrencies produce the same lines; only the time differs. Prints, per
run: wall seconds, teacher+judge requests, completion tokens, synthetic tokens kept, and their rates.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engine.data.entigraph import EntigraphConfig, build_entigraph  # noqa: E402


def run_once(url: str, corpus: Path, concurrency: int, tmp: Path) -> dict:
    cfg = EntigraphConfig.model_validate({
        "corpus": [{"path": str(corpus), "licence": "CC0-1.0"}], "chunk_tokens": 64, "overlap_tokens": 8,
        "guard_against": [str(corpus.with_name("none.jsonl"))], "window": 64,
        "teacher": {"url": url, "model": "tiny", "structured": "json_object", "max_tokens": 96, "max_chars": 160,
                    "concurrency": concurrency, "cache_dir": str(tmp / f"cache-{concurrency}-{time.time_ns()}")},
        "variants": {"paraphrase": 2, "summary": 1, "qa": 1, "pairs": 1, "triples": 0}})
    start = time.perf_counter()
    report = build_entigraph(cfg, tmp / "out.jsonl", tmp / "report.json", lambda *a: None, lambda m: None)
    wall = time.perf_counter() - start
    t, j = report["teacher"], report["judge"]
    requests, completion = t["requests"] + j["requests"], t["tokens_out"] + j["tokens_out"]
    synthetic = report["total"]["synthetic_tokens"]
    return {"concurrency": concurrency, "wall_s": round(wall, 1), "requests": requests,
            "completion_tokens": completion, "synthetic_tokens": synthetic,
            "synthetic_tokens_per_min": round(synthetic / wall * 60),
            "completion_tokens_per_s": round(completion / wall, 1), "requests_per_s": round(requests / wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=2, help="times each concurrency runs (alternating)")
    ap.add_argument("--url", default=None, help="an OpenAI-compatible API base (default: start the tiny server)")
    args = ap.parse_args()
    words = (ROOT / "assets" / "corpus" / "pl.txt").read_text(encoding="utf-8").split()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        corpus = tmp / "corpus.txt"
        step = 56  # chunk_tokens - overlap_tokens
        corpus.write_text(" ".join((words * (args.chunks * step // len(words) + 1))[:args.chunks * step + 8]),
                          encoding="utf-8")
        (tmp / "none.jsonl").write_text('{"text": "nic wspólnego z korpusem tutaj nie ma"}\n', encoding="utf-8")
        if args.url:
            runs = [run_once(args.url, corpus, c, tmp) for _ in range(args.rounds) for c in (1, 8)]
        else:
            from llama_server import llama_server

            with llama_server() as url:
                runs = [run_once(url, corpus, c, tmp) for _ in range(args.rounds) for c in (1, 8)]
    for r in runs:
        print(json.dumps(r))
    best = {c: max(r["synthetic_tokens_per_min"] for r in runs if r["concurrency"] == c) for c in (1, 8)}
    print(f"synthetic tokens/min, best of {args.rounds}: concurrency 1: {best[1]}, concurrency 8: {best[8]} "
          f"(×{best[8] / max(best[1], 1):.2f})")


if __name__ == "__main__":
    from machine_load import reported_load

    with reported_load():
        main()
