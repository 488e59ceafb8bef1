"""The `serve` and `bench.serve` job kinds."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from engine.gates.backend import SubjectSpec
from engine.jobs import job_kind
from engine.serve.config import BenchServeConfig, ServeConfig

SERVE_EXAMPLE = '''# serve: the shipped GGUF behind llama-swap on a box (slayer run serve.toml --box simp).
# mode = "llama-swap" adds (or updates, idempotently) models.<name> in llama-swap's config.yaml: a backup of the
# old file is kept beside it and the new one replaces it in one rename. mode = "direct" runs llama-server until
# the job is cancelled (`slayer runs cancel RUN`); mode = "vllm" writes (and runs) base + LoRA hot-loaded.
kind = "serve"
name = "serve-slayer"
mode = "llama-swap"                   # llama-swap | direct | vllm

[subject]
name = "slayer-v2-Q8_0"               # the model id clients send
kind = "quant"
file = "~/slayer/runs/export/outputs/gguf/slayer-Q8_0.gguf"   # an export.gguf output on this box

[server]                              # the llama-server command line
binary = "auto"                       # llama-server on PATH, else llama-cpp-python's server
ctx_size = 8192
gpu_layers = 99                       # all layers on the 3090
parallel = 4                          # request slots
port = 8080                           # direct mode only; llama-swap assigns ${PORT}

[llama_swap]
config = "~/llama-swap/config.yaml"   # must exist: llama-swap is installed on the box
ttl = 600                             # unload after 10 idle minutes

# [vllm]                              # mode = "vllm" (GPU box; plain LoRA adapters, not DoRA)
# model = "Qwen/Qwen3.5-27B"
# adapter = "~/slayer/runs/sft/outputs/checkpoint-800"
# max_lora_rank = 16
# max_model_len = 8192
'''

BENCH_EXAMPLE = '''# bench.serve: TTFT p50/p95, decode tokens/s, requests/s at concurrency 1, 4, 8 on a fixed Polish +
# English prompt set; every [[subjects]] entry is served by llama-server with the same [server] settings on
# this box (or reached at its `url`, e.g. llama-swap). Results are gate results serve_c1, serve_c4, serve_c8
# (axis latency).
kind = "bench.serve"
name = "serve-bench"
concurrency = [1, 4, 8]
max_tokens = 128                      # every request generates exactly this many tokens (ignore_eos)
repeats = 1
warmup = 2
# prompts = "my_prompts.jsonl"        # {"lang", "prompt"} per line (default: assets/serve/prompts.jsonl)

[server]
ctx_size = 4096
gpu_layers = 99                       # 0 on a CPU box
parallel = 8                          # at least the highest concurrency

[[subjects]]
name = "slayer-v2-Q8_0"
kind = "quant"
file = "runs/export/outputs/gguf/slayer-Q8_0.gguf"

[[subjects]]
name = "base-Q8_0"
kind = "base"
file = "runs/export-base/outputs/gguf/base-Q8_0.gguf"

# [[subjects]]                        # a model already served (llama-swap routes by model id)
# name = "slayer-v2-Q4_K_M"
# url = "http://127.0.0.1:8080/v1"
'''


def _write_json(path: Path, data: dict) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return tmp.replace(path)


def _hold(proc: subprocess.Popen, hold_s: float, ctx) -> None:
    """Keep serving until cancelled (SIGTERM → JobCancelled) or hold_s; fail if the server dies."""
    started = time.monotonic()
    while not hold_s or time.monotonic() - started < hold_s:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} (see log.txt)")
        time.sleep(0.5)
    ctx.log(f"served for {hold_s:g} s; stopping")


def _llama_swap(config: ServeConfig, ctx, file: Path, subject: dict) -> None:
    from engine.events import sha256_file
    from engine.serve.launch import resolve_binary, server_command
    from engine.serve.llama_swap import model_entry, upsert_model

    path = Path(config.llama_swap.config).expanduser()
    cmd = server_command(resolve_binary(config.server), config.server, file, "${PORT}")
    entry = model_entry(cmd, config.llama_swap.ttl, subject, sha256_file(file))
    action = upsert_model(path, config.subject.name, entry, config.llama_swap.backups)
    out = _write_json(ctx.outputs / "llama-swap-entry.json", {"config": str(path), "model": config.subject.name,
                                                               "action": action, "entry": entry})
    ctx.artifact(out, "serve_config", mode="llama-swap", model=config.subject.name, config=str(path), action=action,
                 subject=subject)
    ctx.log(f"llama-swap {path}: models.{config.subject.name} {action}")


def _direct(config: ServeConfig, ctx, file: Path, subject: dict) -> None:
    from engine.serve.launch import running_server

    with running_server(config.server, file, config.subject.name, ctx.run_dir / "server.log") as (url, proc, cmd):
        out = _write_json(ctx.outputs / "endpoint.json", {"url": url, "model": config.subject.name, "pid": proc.pid,
                                                          "cmd": cmd})
        ctx.artifact(out, "serve_endpoint", mode="direct", url=url, model=config.subject.name, subject=subject)
        ctx.log(f"serving {config.subject.name} at {url} (pid {proc.pid})")
        _hold(proc, config.hold_s, ctx)


def _vllm(config: ServeConfig, ctx) -> None:
    from engine.serve.launch import check_port_free, stop, wait_ready
    from engine.serve.vllm import vllm_script

    v = config.vllm
    script = ctx.outputs / "vllm.sh"
    script.write_text(vllm_script(v, config.subject.name), encoding="utf-8")
    script.chmod(0o755)
    subject = SubjectSpec(name=config.subject.name, kind="checkpoint", model=v.model, adapter=v.adapter).subject()
    ctx.artifact(script, "serve_recipe", mode="vllm", model=v.adapter_name or config.subject.name, subject=subject)
    if not config.start:
        ctx.log(f"vLLM recipe written to {script}; run it on a GPU box")
        return
    check_port_free("0.0.0.0", v.port)
    with open(ctx.run_dir / "server.log", "ab") as log:
        proc = subprocess.Popen(["bash", str(script)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{v.port}/v1", proc, config.server.start_timeout_s, ctx.run_dir / "server.log")
        ctx.log(f"vLLM serving {v.model} + adapter {config.subject.name} on port {v.port}")
        _hold(proc, config.hold_s, ctx)
    finally:
        stop(proc)


@job_kind("serve", ServeConfig, "Serve a GGUF subject: a llama-swap config entry, a direct llama-server, or a "
          "vLLM base + LoRA recipe", SERVE_EXAMPLE, needs_ml=False)  # a server binary, no torch
def run_serve(config: ServeConfig, ctx) -> None:
    from engine.serve.launch import check_gguf

    if config.mode == "vllm":
        return _vllm(config, ctx)
    file = check_gguf(config.subject.resolved_file(), config.subject.name)
    subject = config.subject.subject()
    (_llama_swap if config.mode == "llama-swap" else _direct)(config, ctx, file, subject)


@job_kind("bench.serve", BenchServeConfig, "Serving latency and throughput (TTFT, decode tok/s, req/s at "
          "concurrency 1/4/8) of GGUF subjects under identical server settings", BENCH_EXAMPLE, needs_ml=False)
def run_bench_serve(config: BenchServeConfig, ctx) -> None:
    from engine.serve.bench import check_reachable, load_prompts, measure
    from engine.serve.launch import PY_SERVER, check_gguf, free_port, resolve_binary, running_server

    prompts, sha = load_prompts(config.prompts)
    files = {t.name: check_gguf(t.resolved_file(), t.name) for t in config.subjects if not t.url}
    for t in config.subjects:
        if t.url:
            check_reachable(t.url, t.name)
    binary = resolve_binary(config.server) if files else None
    server = "llama-cpp-python" if binary == PY_SERVER else "llama.cpp"
    total, done = len(config.subjects), 0
    summary = {}
    for i, target in enumerate(config.subjects):
        ctx.progress(done, total, "subjects", target.name)
        if target.url:
            results = measure(config, target, target.url, prompts, sha, "endpoint", ctx)
        else:
            log = ctx.run_dir / f"server-{i}.log"
            with running_server(config.server, files[target.name], target.name, log,
                                port=free_port(config.server.host)) as (url, _proc, _cmd):
                results = measure(config, target, url, prompts, sha, server, ctx)
        summary[target.name] = {r["gate"]: r["metrics"] for r in results}
        done += 1
        ctx.progress(done, total, "subjects", target.name)
    out = _write_json(ctx.outputs / "bench_serve.json", {"prompts_sha256": sha, "server": server,
                                                         "results": summary})
    ctx.artifact(out, "serve_bench")
