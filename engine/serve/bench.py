"""bench.serve: a fixed Polish + English prompt set at fixed concurrencies against each subject's server.

Each (subject, concurrency) becomes one gate-like result (gate `serve_c<N>`, axis `latency`): metrics
TTFT p50/p95, decode tokens/s, output tokens/s, requests/s; per-request decode tokens/s as the paired
outcomes (same requests in the same order for every subject); a fingerprint of the prompt set, the
request settings, the server settings and the box, so only like-for-like measurements are compared.
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import statistics
from pathlib import Path

import engine
from engine.errors import SpecError
from engine.serve.client import Endpoint, Timing, run_requests
from engine.serve.config import BenchServeConfig, GGUFSubject, ServerSettings

DEFAULT_PROMPTS = Path(__file__).resolve().parents[2] / "assets" / "serve" / "prompts.jsonl"
CLIENT_VERSION = 1
METRICS = ["decode_tok_s", "output_tok_s", "req_s", "ttft_p50_ms", "ttft_p95_ms", "e2e_p50_ms"]


def load_prompts(path: str | None) -> tuple[list[str], str]:
    """(prompts, sha256 of the file); each line {"lang", "prompt"}."""
    p = Path(path).expanduser() if path else DEFAULT_PROMPTS
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise SpecError(f"prompts: {p}: cannot read ({e.strerror})") from None
    prompts = []
    for no, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            prompts.append(str(json.loads(line)["prompt"]))
        except (ValueError, KeyError, TypeError):
            raise SpecError(f"prompts: {p}:{no}: not a JSON object with a \"prompt\"") from None
    if not prompts:
        raise SpecError(f"prompts: {p}: no prompts")
    return prompts, hashlib.sha256(raw).hexdigest()


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarise(timings: list[Timing], wall_s: float) -> dict:
    ttft = [t.ttft_s * 1000 for t in timings]
    tokens = sum(t.tokens for t in timings)
    return {"decode_tok_s": statistics.fmean(t.decode_tok_s for t in timings), "output_tok_s": tokens / wall_s,
            "req_s": len(timings) / wall_s, "ttft_p50_ms": percentile(ttft, 50), "ttft_p95_ms": percentile(ttft, 95),
            "e2e_p50_ms": percentile([t.total_s * 1000 for t in timings], 50), "output_tokens": tokens,
            "wall_s": wall_s}


def fingerprint(config: BenchServeConfig, prompts_sha: str, n: int, concurrency: int, server: str) -> dict:
    s: ServerSettings = config.server
    return {"dataset_hash": prompts_sha, "n": n, "seed": 0, "template_hash": None, "scorer": "serve",
            "scorer_version": CLIENT_VERSION, "backend": server, "dtype": None, "batch_size": concurrency,
            "concurrency": concurrency, "max_tokens": config.max_tokens, "ignore_eos": config.ignore_eos,
            "server": {"ctx_size": s.ctx_size, "gpu_layers": s.gpu_layers, "threads": s.threads,
                       "parallel": s.parallel, "extra_args": s.extra_args},
            "box": socket.gethostname(), "machine": platform.machine(), "harness_version": engine.__version__}


def result(config: BenchServeConfig, subject: dict, concurrency: int, timings: list[Timing], wall_s: float,
           prompts_sha: str, server: str) -> dict:
    """The gate_result event of one (subject, concurrency)."""
    summary = summarise(timings, wall_s)
    rates = [t.decode_tok_s for t in timings]
    se = statistics.stdev(rates) / len(rates) ** 0.5 if len(rates) > 1 else 0.0
    return {"subject": subject, "gate": f"serve_c{concurrency}", "axis": "latency", "scorer": "serve",
            "metrics": {m: round(summary[m], 4) for m in METRICS}, "primary": "decode_tok_s",
            "higher_is_better": True, "stderr": {"decode_tok_s": round(se, 4)}, "n": len(timings),
            "outcomes": [round(r, 4) for r in rates], "preds": None, "golds": None,
            "fingerprint": fingerprint(config, prompts_sha, len(timings), concurrency, server),
            "tolerance_pp": config.tolerance_tok_s, "elapsed_s": round(wall_s, 3),
            "output_tokens": summary["output_tokens"]}


def check_reachable(url: str, name: str) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/models", timeout=10) as r:
            r.read()
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise SpecError(f"subject {name!r}: endpoint {url} is unreachable ({reason})") from None


def measure(config: BenchServeConfig, target: GGUFSubject, url: str, prompts: list[str], prompts_sha: str,
            server: str, ctx) -> list[dict]:
    """Warm up, then every concurrency against one served subject; emits and returns its results."""
    endpoint = Endpoint(url, target.model or target.name, config.timeout_s)
    bodies = [endpoint.body(p, config.max_tokens, config.ignore_eos) for p in prompts] * config.repeats
    if config.warmup:
        run_requests(endpoint, bodies[:config.warmup], 1)
    subject = target.subject()
    results = []
    for c in config.concurrency:
        timings, wall = run_requests(endpoint, bodies, c)
        res = result(config, subject, c, timings, wall, prompts_sha, server)
        ctx.gate_result(res)
        m = res["metrics"]
        ctx.log(f"{target.name} c={c}: TTFT p50 {m['ttft_p50_ms']:.0f} ms p95 {m['ttft_p95_ms']:.0f} ms, decode "
                f"{m['decode_tok_s']:.1f} tok/s, {m['output_tok_s']:.1f} output tok/s, {m['req_s']:.2f} req/s")
        results.append(res)
    return results
