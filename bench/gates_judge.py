"""Judged gate throughput: pairwise judgements per second against a local OpenAI-compatible server, judge
concurrency 1 vs 8 in the same run.

    python bench/gates_judge.py [--items 24] [--rounds 3] [--answer-words 80] [--latency-ms 0 250]
                                [--url http://127.0.0.1:PORT/v1]

Without --url it starts llama-cpp-python's server on the tiny Qwen3 GGUF (tests/llama_server.py). With a
latency above 0 the requests go through a loopback proxy (tests/gate_fixtures.py) that holds each one that
long before forwarding it: a remote judge's network and queueing time, which concurrency can overlap. The
requests are exactly what the style_judge gate sends (its prompts, both answer orders per item, the
verdict schema, structured = "json_object"); the answers are fixed Polish word sequences cut from
assets/corpus/pl.txt, so every run sends the same requests and only the time differs. Each run starts with
an empty reply cache; a last run repeats concurrency 8 on the warm cache (what a resumed gate pays).
An item is one pairwise judgement = two judge calls. Rounds alternate which concurrency runs first; the
summary is the median (and spread) of the rounds.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engine.datafiles import read_rows  # noqa: E402
from engine.gates.judge import SCHEMA, messages, parse_verdict  # noqa: E402
from engine.gates.judge_client import JudgeClient, JudgeSettings, judge_prompts  # noqa: E402
from engine.gates.spec import load_gate  # noqa: E402


def requests(items: int, answer_words: int, client: JudgeClient) -> list[dict]:
    gate = load_gate("style_judge")
    system, prompt = judge_prompts(gate)
    questions = [r["prompt"] for r in read_rows(ROOT / "assets" / "gates" / "data" / "prompts_pl.jsonl")]
    words = (ROOT / "assets" / "corpus" / "pl.txt").read_text(encoding="utf-8").split()
    rnd = random.Random(1234)
    answer = lambda: " ".join(rnd.choice(words) for _ in range(answer_words))  # noqa: E731
    bodies = []
    for i in range(items):
        question, mine, theirs = questions[i % len(questions)], answer(), answer()
        bodies.append(client.body(messages(system, prompt, question, mine, theirs), SCHEMA))
        bodies.append(client.body(messages(system, prompt, question, theirs, mine), SCHEMA))
    return bodies


def run_once(url: str, cache: Path, concurrency: int, items: int, answer_words: int, max_tokens: int,
             latency_ms: int) -> dict:
    client = JudgeClient(JudgeSettings(url=url, model="tiny-judge", structured="json_object", max_tokens=max_tokens,
                                       concurrency=concurrency, cache_dir=str(cache)))
    bodies = requests(items, answer_words, client)
    start = time.perf_counter()
    replies = client.complete_all(bodies)
    wall = time.perf_counter() - start
    verdicts = [parse_verdict(r) for r in replies]
    return {"latency_ms": latency_ms, "concurrency": concurrency,
            "cache": "warm" if client.counts["cache_hits"] else "empty", "wall_s": round(wall, 2), "items": items,
            "calls": client.counts["calls"],
            "items_per_s": round(items / wall, 2), "calls_per_s": round(client.counts["calls"] / wall, 2),
            "unparseable": verdicts.count(None)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=24, help="pairwise judgements per run (two calls each)")
    ap.add_argument("--rounds", type=int, default=3, help="times each concurrency runs; which runs first alternates")
    ap.add_argument("--answer-words", type=int, default=80, help="words in each judged answer")
    ap.add_argument("--max-tokens", type=int, default=32, help="longest judge reply")
    ap.add_argument("--latency-ms", type=int, nargs="+", default=[0, 250], help="added per request (0: direct)")
    ap.add_argument("--url", default=None, help="an OpenAI-compatible API base (default: start the tiny server)")
    args = ap.parse_args()

    def bench(url: str, tmp: Path, latency_ms: int) -> list[dict]:
        once = lambda cache, c: run_once(url, tmp / cache, c, args.items, args.answer_words,  # noqa: E731
                                         args.max_tokens, latency_ms)
        order = lambda r: (1, 8) if r % 2 == 0 else (8, 1)  # noqa: E731  (neither side always runs first)
        runs = [once(f"cache-{latency_ms}-{r}-{c}", c) for r in range(args.rounds) for c in order(r)]
        return runs + [once(f"cache-{latency_ms}-{args.rounds - 1}-8", 8)]

    def with_latency(url: str, tmp: Path) -> list[dict]:
        from gate_fixtures import CountingProxy

        runs = []
        for latency_ms in args.latency_ms:
            if latency_ms == 0:
                runs += bench(url, tmp, 0)
                continue
            proxy = CountingProxy(url)
            proxy.reset(delay_s=latency_ms / 1000)
            try:
                runs += bench(proxy.url, tmp, latency_ms)
            finally:
                proxy.close()
        return runs

    with tempfile.TemporaryDirectory() as d:
        if args.url:
            runs = with_latency(args.url, Path(d))
        else:
            from llama_server import llama_server

            with llama_server(n_ctx=4096) as url:
                runs = with_latency(url, Path(d))
    for r in runs:
        print(json.dumps(r))
    for latency_ms in args.latency_ms:
        mine = [r for r in runs if r["latency_ms"] == latency_ms]
        cold = {c: sorted(r["items_per_s"] for r in mine if r["concurrency"] == c and r["cache"] == "empty")
                for c in (1, 8)}
        median = {c: statistics.median(v) for c, v in cold.items()}
        print(f"latency {latency_ms} ms: judged items/s, median (min-max) of {args.rounds} alternating rounds: "
              f"concurrency 1: {median[1]} ({cold[1][0]}-{cold[1][-1]}), concurrency 8: {median[8]} "
              f"({cold[8][0]}-{cold[8][-1]}), ×{median[8] / median[1]:.2f}; warm cache: {mine[-1]['items_per_s']}")


if __name__ == "__main__":
    from machine_load import reported_load

    with reported_load():
        main()
