"""Pulling a remote run home: results always, checkpoints and GGUF on demand, resumed from .part files,
checked by sha256 against the box."""

from __future__ import annotations

import asyncio
import os

import pytest

from engine.jobs import parse_spec
from engine.runner import run_job
from remotes.boxes import BoxError
from remotes.sync import sync_run
from sshd import engine_box, register, sshd, sshd_factory  # noqa: F401  (fixtures)
from store import Store
from store.ingest import register_run

MB = 1 << 20


def test_sync_pulls_results_always_and_heavy_files_on_demand_resumably(sshd, home, tmp_path, store_url):
    register(home, engine_box(sshd, "b", tmp_path / "wd"), sshd)
    store = Store.open(store_url)
    remote = tmp_path / "wd" / "runs" / "r1"  # a finished run on the box (the box is this machine)
    run_job(parse_spec({"kind": "debug.sleep", "steps": 2, "interval_s": 0}, "spec"), remote, "r1")
    register_run(store, "r1", kind="debug.sleep", run_dir=str(remote), box="b")
    files = {"outputs/results/gate_pl.json": b'{"acc": 0.5}', "outputs/reports/mix.json": b"{}",
             "outputs/checkpoint-10/adapter_model.safetensors": os.urandom(2 * MB),
             "outputs/model-q4.gguf": os.urandom(3 * MB)}
    for rel, data in files.items():
        (remote / rel).parent.mkdir(parents=True, exist_ok=True)
        (remote / rel).write_bytes(data)
    local = home / "runs" / "r1"

    light = asyncio.run(sync_run(home, store, "r1"))
    assert {"outputs/results/gate_pl.json", "outputs/reports/mix.json", "events.jsonl", "job.toml"} \
        <= set(light.pulled)
    assert sorted(light.held_back) == ["outputs/checkpoint-10/adapter_model.safetensors", "outputs/model-q4.gguf"]
    assert (local / "outputs/results/gate_pl.json").read_bytes() == files["outputs/results/gate_pl.json"]
    assert not (local / "outputs/model-q4.gguf").exists()

    gguf = local / "outputs/model-q4.gguf"
    gguf.with_name(gguf.name + ".part").write_bytes(files["outputs/model-q4.gguf"][:MB])  # an interrupted pull
    seen: list[tuple[str, int, int]] = []
    resumed = asyncio.run(sync_run(home, store, "r1", paths=("outputs/model-q4.gguf",),
                                   on_progress=lambda *p: seen.append(p)))
    assert resumed.pulled == ["outputs/model-q4.gguf"] and resumed.bytes == 2 * MB
    assert gguf.read_bytes() == files["outputs/model-q4.gguf"] and seen[-1][1:] == (3 * MB, 3 * MB)
    assert resumed.held_back == ["outputs/checkpoint-10/adapter_model.safetensors"]

    ckpt = local / "outputs/checkpoint-10/adapter_model.safetensors"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.with_name(ckpt.name + ".part").write_bytes(os.urandom(MB))  # a corrupt partial pull
    with pytest.raises(BoxError, match="sha256 mismatch"):
        asyncio.run(sync_run(home, store, "r1", heavy=True))
    assert not ckpt.exists() and not ckpt.with_name(ckpt.name + ".part").exists()
    fixed = asyncio.run(sync_run(home, store, "r1", heavy=True))
    assert fixed.pulled == ["outputs/checkpoint-10/adapter_model.safetensors"]
    assert ckpt.read_bytes() == files["outputs/checkpoint-10/adapter_model.safetensors"]

    again = asyncio.run(sync_run(home, store, "r1", heavy=True))
    assert again.pulled == [] and again.bytes == 0 and len(again.up_to_date) == len(fixed.up_to_date) + 1
