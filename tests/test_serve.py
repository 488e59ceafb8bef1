"""Serving: the llama-swap entry (idempotent, validated, atomic with a backup), bad input as one line and exit 2,
and llama-cpp-python's server on loopback measured by bench.serve into the store, the card and its cost."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from llama_server import tiny_gguf

from engine.jobs import dumps_toml

ROOT = Path(__file__).resolve().parents[1]
SWAP_CONFIG = """\
healthCheckTimeout: 120
models:
  other:
    cmd: llama-server --port ${PORT} -m other.gguf
    ttl: 60
"""


def engine_run(spec: dict, run_dir: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m engine run` on the spec, as a box runs it."""
    spec_path = run_dir.with_suffix(".toml")
    spec_path.write_text(dumps_toml(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "engine", "run", str(spec_path), "--run-dir", str(run_dir)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "m-Q8_0.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    return path


def swap_spec(file, config: Path, ttl: int = 300) -> dict:
    return {"kind": "serve", "mode": "llama-swap", "subject": {"name": "slayer-q8", "file": str(file)},
            "server": {"binary": "llama_cpp.server", "ctx_size": 2048, "gpu_layers": 0},
            "llama_swap": {"config": str(config), "ttl": ttl}}


def test_llama_swap_entry_is_added_then_unchanged_then_updated_with_a_backup(tmp_path):
    from engine.serve.llama_swap import validate

    gguf, config = fake_gguf(tmp_path), tmp_path / "llama-swap" / "config.yaml"
    config.parent.mkdir()
    config.write_text(SWAP_CONFIG)
    assert engine_run(swap_spec(gguf, config), tmp_path / "r1").returncode == 0
    data = yaml.safe_load(config.read_text())
    validate(data, "config.yaml")
    entry = data["models"]["slayer-q8"]
    assert data["models"]["other"]["ttl"] == 60 and data["healthCheckTimeout"] == 120  # the rest is kept
    assert "--port ${PORT}" in entry["cmd"] and str(gguf.resolve()) in entry["cmd"] and "--n_ctx 2048" in entry["cmd"]
    assert entry["ttl"] == 300 and entry["metadata"]["gguf_sha256"]
    backups = sorted(config.parent.glob("config.yaml.*.bak"))
    assert [b.read_text() for b in backups] == [SWAP_CONFIG]

    written = config.read_bytes()
    assert engine_run(swap_spec(gguf, config), tmp_path / "r2").returncode == 0
    assert config.read_bytes() == written and len(list(config.parent.glob("*.bak"))) == 1  # idempotent
    assert engine_run(swap_spec(gguf, config, ttl=30), tmp_path / "r3").returncode == 0
    assert yaml.safe_load(config.read_text())["models"]["slayer-q8"]["ttl"] == 30
    events = [json.loads(x) for x in (tmp_path / "r3" / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "artifact" and e["kind"] == "serve_config" and e["action"] == "updated" for e in events)
    assert not list(config.parent.glob(".*.tmp"))


@pytest.mark.parametrize("case", ["no gguf", "not a gguf", "no llama-swap", "invalid llama-swap", "port in use",
                                  "unreachable endpoint"])
def test_bad_input_is_one_line_exit_2_and_leaves_the_llama_swap_config_alone(tmp_path, case):
    gguf, config = fake_gguf(tmp_path), tmp_path / "config.yaml"
    config.write_text(SWAP_CONFIG)
    spec = swap_spec(gguf, config)
    busy = socket.socket()
    expect = {"no gguf": "no such GGUF file", "not a gguf": "not a GGUF file", "no llama-swap": "no llama-swap config",
              "invalid llama-swap": "unknown top-level key", "port in use": "is in use",
              "unreachable endpoint": "unreachable"}[case]
    if case == "no gguf":
        spec["subject"]["file"] = str(tmp_path / "missing.gguf")
    elif case == "not a gguf":
        gguf.write_bytes(b"PK\x03\x04 a zip")
    elif case == "no llama-swap":
        spec["llama_swap"]["config"] = str(tmp_path / "nowhere" / "config.yaml")
    elif case == "invalid llama-swap":
        config.write_text(SWAP_CONFIG + "modelz: {}\n")
    elif case == "port in use":
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        spec.update(mode="direct", server={**spec["server"], "port": busy.getsockname()[1]})
    else:
        spec = {"kind": "bench.serve", "subjects": [{"name": "x", "url": "http://127.0.0.1:9/v1"}]}
    before = config.read_bytes()
    with busy:
        proc = engine_run(spec, tmp_path / "run")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and expect in proc.stderr, proc.stderr
    assert config.read_bytes() == before and not list(tmp_path.glob("*.bak"))


def test_vllm_recipe_hot_loads_a_lora_adapter_and_refuses_dora(tmp_path):
    from engine.errors import SpecError
    from engine.serve.config import VLLMSettings
    from engine.serve.vllm import vllm_script

    adapter = tmp_path / "ckpt"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 32, "use_dora": False}))
    script = vllm_script(VLLMSettings(model="Qwen/Qwen3.5-27B", adapter=str(adapter)), "slayer-v2")
    assert "--enable-lora" in script and f"slayer-v2={adapter.resolve()}" in script
    assert "--max-lora-rank 32" in script and "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in script
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16, "use_dora": True}))
    with pytest.raises(SpecError, match="DoRA"):
        vllm_script(VLLMSettings(model="m", adapter=str(adapter)), "slayer-v2")


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert proc.poll() is None, "the serve job ended before serving"
        assert time.monotonic() < deadline, "the serve job did not serve in time"
        time.sleep(0.2)
    return json.loads(path.read_text())


def test_served_subjects_are_benchmarked_into_the_store_with_their_serving_cost(tmp_path, home):
    """A direct `serve` job (llama-cpp-python's server) measured through its URL, and two GGUF files served by
    bench.serve itself with the same settings; the results join the files' subjects; cost per 1M tokens."""
    from engine.export.quantize import quantize
    from engine.serve.launch import free_port
    from remotes.cost import price_of
    from store import Store
    from store.card import render_card_files
    from store.deltas import delta_table
    from store.ingest import ingest_run_dir, register_run

    f16 = tiny_gguf()
    q8 = quantize(f16, tmp_path / "tiny-Q8_0.gguf", "Q8_0")
    server = {"binary": "llama_cpp.server", "ctx_size": 512, "gpu_layers": 0, "threads": 1}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    spec = tmp_path / "serve.toml"
    spec.write_text(dumps_toml({"kind": "serve", "mode": "direct", "subject": {"name": "tiny-q8", "file": str(q8)},
                                "server": {**server, "port": free_port()}}))
    serving = subprocess.Popen([sys.executable, "-m", "engine", "run", str(spec), "--run-dir", str(tmp_path / "srv")],
                               env=env, cwd=ROOT)
    try:
        endpoint = _wait_for(tmp_path / "srv" / "outputs" / "endpoint.json", serving)
        bench = {"kind": "bench.serve", "experiment": "ship", "server": server, "concurrency": [1, 2],
                 "max_tokens": 6, "warmup": 1, "subjects": [
                     {"name": "tiny-f16", "kind": "base", "file": str(f16)},
                     {"name": "tiny-q8", "kind": "quant", "file": str(q8)},
                     {"name": "tiny-q8-served", "kind": "quant", "url": endpoint["url"], "model": "tiny-q8"}]}
        proc = engine_run(bench, tmp_path / "bench")
        assert proc.returncode == 0, (tmp_path / "bench" / "log.txt").read_text()[-2000:]
    finally:
        serving.send_signal(signal.SIGTERM)
        serving.wait(30)
    status = json.loads((tmp_path / "srv" / "events.jsonl").read_text().splitlines()[-1])
    assert status["status"] == "cancelled"  # cancelling the job stops its server

    (home / "boxes.toml").write_text("[local]\ncost_per_hour = 1.8\ngpus = 1\n")
    store = Store.open(f"sqlite:///{home / 'slayer.db'}")
    register_run(store, "bench", kind="bench.serve", experiment="ship", run_dir=str(tmp_path / "bench"),
                 **price_of(home, "local").fields())
    ingest_run_dir(store, tmp_path / "bench")
    table = delta_table(store, "ship")
    assert [g for g, a in table.gates] == ["serve_c1", "serve_c2"] and {a for _, a in table.gates} == {"latency"}
    q8_row = next(r for r in table.rows if r.name == "tiny-q8")
    assert q8_row.cells["serve_c1"].delta_pp is not None  # same fingerprint as the base: compared, paired
    served = next(r for r in table.rows if r.name == "tiny-q8-served")
    assert served.cells["serve_c1"].verdict == "MISMATCH"  # an endpoint it did not start is not like-for-like
    card, appendix = render_card_files(store, "ship", subject="tiny-q8")
    section = card[card.index("## Latency and cost"):card.index("## Contamination")]
    rows = [line for line in section.splitlines() if line.startswith("| tiny-")]
    assert len(rows) == 4  # tiny-q8 and tiny-f16 at concurrency 1 and 2; the endpoint row has another fingerprint
    per_million = [float(r.split("|")[-2].replace(",", "")) for r in rows]
    tok_s = [float(r.split("|")[7]) for r in rows]
    assert all(abs(p - 1.8 / (t * 3600) * 1e6) <= 0.01 * p for p, t in zip(per_million, tok_s))
    store.close()


def test_slayer_serve_prints_specs_for_the_shipped_gguf_and_refuses_a_subject_without_one(home, tmp_path):
    """`slayer serve EXP` turns the store's export into serve / bench.serve specs that run as printed."""
    import tomllib

    from deltas_fixtures import gate_event, ingest_events, subject

    from engine.jobs import parse_spec
    from store import Store

    ckpt, bare = subject("ckpt-8", "checkpoint", adapter="a/ckpt-8"), subject("ckpt-9", "checkpoint", adapter="a/9")
    base = subject("base", "base")
    store = Store.open(f"sqlite:///{home / 'slayer.db'}")
    ingest_events(store, "gates", "ship", [gate_event(s, "g", "pl_style", [1, 0, 1]) for s in (base, ckpt, bare)])
    ingest_events(store, "export", "ship", [
        {"type": "artifact", "path": str(tmp_path / f"m-{q}.gguf"), "kind": "gguf", "sha256": "ab" * 32,
         "bytes": 9, "quant": q, "source": {**ckpt["recipe"]}} for q in ("F16", "Q8_0")], kind="export.gguf",
        run_dir=str(tmp_path))
    store.close()
    env = {**os.environ, "SLAYER_HOME": str(home), "PYTHONPATH": str(ROOT)}

    def slayer(*args):
        return subprocess.run([sys.executable, "-m", "slayer_console", *args], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=120)

    served = slayer("serve", "ship", "--subject", "ckpt-8", "--config", str(tmp_path / "config.yaml"))
    assert served.returncode == 0, served.stderr
    spec = parse_spec(tomllib.loads(served.stdout), "serve")
    assert spec.kind.name == "serve" and spec.config.subject.file == str(tmp_path / "m-Q8_0.gguf")
    bench = parse_spec(tomllib.loads(slayer("serve", "ship", "--subject", "ckpt-8", "--quant", "F16",
                                            "--bench").stdout), "bench")
    assert [s.file for s in bench.config.subjects] == [str(tmp_path / "m-F16.gguf")]
    missing = slayer("serve", "ship", "--subject", "ckpt-9")
    assert missing.returncode == 2 and missing.stdout == "" and len(missing.stderr.strip().splitlines()) == 1
    assert "'ckpt-9' has no exported GGUF file" in missing.stderr
