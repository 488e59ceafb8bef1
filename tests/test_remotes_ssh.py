"""Boxes over real SSH (an OpenSSH sshd on 127.0.0.1): add → check → bootstrap → launch detached → the
server dies mid-run and comes back → attach → every event in the store once; refusals are one line."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from conftest import ROOT, free_port
from engine.errors import SpecError
from engine.jobs import parse_spec
from remotes.boxes import get_box, put_box
from remotes.fanout import fan_out
from remotes.follow import follow_run
from remotes.launch import cancel_remote, launch_remote
from slayer_console.cli import cli
from sshd import engine_box, register, sshd, sshd_factory  # noqa: F401  (fixtures)
from engine.gates.sandbox import sandbox_mode
from store import Store
from store.ingest import cursor_of, ingest_run_dir
from store.models import Metric
from store.queries import count_rows, get_run


def slayer(home: Path, *args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["--home", str(home), *args], input=input)


def sleep_spec(steps: int, interval_s: float = 0.1):
    return parse_spec({"kind": "debug.sleep", "steps": steps, "interval_s": interval_s}, "test spec")


def events_on_box(run_dir: str) -> list[dict]:
    return [json.loads(line) for line in Path(run_dir, "events.jsonl").read_text().splitlines()]


def assert_ingested_once(store: Store, run_id: str, run_dir: str) -> None:
    events = events_on_box(run_dir)
    assert cursor_of(store, run_id) == (Path(run_dir, "events.jsonl").stat().st_size, events[-1]["seq"])
    assert count_rows(store, Metric) >= sum(e["type"] == "metric" for e in events)
    with store.session() as s:
        seqs = s.execute(select(Metric.seq).where(Metric.run_id == run_id)).scalars().all()
    assert sorted(seqs) == [e["seq"] for e in events if e["type"] == "metric"]


def test_add_check_bootstrap_run_survives_sshd_restart_then_attach(sshd, home, tmp_path):
    spec_file = tmp_path / "job.toml"
    spec_file.write_text('kind = "debug.sleep"\nsteps = 30\ninterval_s = 0.1\n')
    box = engine_box(sshd, "b1", tmp_path / "wd")
    args = ["boxes", "add", "b1", "--ssh", f"{box.user}@127.0.0.1:{sshd.port}", "--key", box.key,
            "--workdir", box.workdir, "--python", box.python, "--env", f"PYTHONPATH={ROOT}"]

    refused = slayer(home, *args, input="n\n")
    assert sshd.fingerprint in refused.output and isinstance(refused.exception, SpecError)
    assert not (home / "boxes.toml").exists()
    added = slayer(home, *args, input="y\n")
    assert added.exit_code == 0 and sshd.fingerprint in added.output, added.output
    assert get_box(home, "b1").port == sshd.port

    checked = slayer(home, "boxes", "check", "b1", "--format", "json")
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert report["os"] == "Linux" and report["arch"] and report["gpus"] == [] and report["engine"]
    assert report["python_version"] == ".".join(map(str, sys.version_info[:3])) and report["torch"]
    assert report["host_key"] == sshd.fingerprint and report["disk_free_gib"] > 0
    assert report["sandbox"] == sandbox_mode()  # the box (this machine) says which sandbox code gates get

    booted = slayer(home, "boxes", "bootstrap", "b1")
    assert booted.exit_code == 0 and "configured python" in booted.output, booted.output

    launched = slayer(home, "run", str(spec_file), "--box", "b1", "--detach", "--experiment", "remote")
    assert launched.exit_code == 0, launched.output
    run_id = launched.output.strip()
    home_store = Store.open(str(home / "slayer.db"))
    run_dir = get_run(home_store, run_id).run_dir
    states: list[str] = []

    async def follow_through_outage() -> str:
        follower = asyncio.create_task(follow_run(home, home_store, run_id, on_state=states.append))
        while cursor_of(home_store, run_id)[1] < 10:
            await asyncio.sleep(0.05)
        sshd.stop()
        seen_before = cursor_of(home_store, run_id)[1]
        await asyncio.sleep(1.0)
        written_while_down = len(events_on_box(run_dir))
        sshd.start()
        return await follower, seen_before, written_while_down

    status, seen_before, written_while_down = asyncio.run(follow_through_outage())
    assert status == "succeeded"
    assert written_while_down > seen_before  # the job kept writing while nobody could reach the box
    assert any("connection lost" in s for s in states) and any("reconnected" in s for s in states)
    assert_ingested_once(home_store, run_id, run_dir)

    attached = slayer(home, "runs", "attach", run_id, "--quiet")
    assert attached.exit_code == 0 and f"{run_id} succeeded" in attached.output
    assert (home / "runs" / run_id / "events.jsonl").read_bytes() == Path(run_dir, "events.jsonl").read_bytes()
    assert ingest_run_dir(home_store, home / "runs" / run_id).events == 0  # the pulled copy adds nothing
    assert get_run(home_store, run_id).experiment == "remote"
    assert_ingested_once(home_store, run_id, run_dir)


def test_changed_host_key_is_refused_and_stays_pinned(sshd, home, tmp_path):
    register(home, engine_box(sshd, "b", tmp_path / "wd"), sshd)
    pinned = (home / "known_hosts").read_text()
    sshd.stop()
    new = sshd.new_host_key()
    sshd.start()
    result = slayer(home, "boxes", "check", "b")
    message = str(result.exception)
    assert isinstance(result.exception, SpecError) and "\n" not in message
    assert "HOST KEY CHANGED" in message and new in message
    assert (home / "known_hosts").read_text() == pinned


def test_unknown_host_key_needs_a_yes_or_the_right_fingerprint(sshd, home, tmp_path):
    user = sshd.box("b").user
    args = ["boxes", "add", "b", "--ssh", f"{user}@127.0.0.1:{sshd.port}", "--key", str(sshd.client_key)]
    wrong = slayer(home, *args, "--accept-host-key", "SHA256:not-the-key")
    assert "not the SHA256:not-the-key you accepted" in str(wrong.exception)
    assert not (home / "known_hosts").exists() and not (home / "boxes.toml").exists()
    right = slayer(home, *args, "--accept-host-key", sshd.fingerprint)
    assert right.exit_code == 0 and sshd.fingerprint in right.output
    assert get_box(home, "b").port == sshd.port


def test_user_mistakes_fail_with_one_line_each(sshd, home, tmp_path):
    register(home, engine_box(sshd, "nokey", tmp_path / "wd", key="/nonexistent/id_ed25519"), sshd)
    put_box(home, engine_box(sshd, "noport", tmp_path / "wd").model_copy(update={"port": free_port()}))
    register(home, engine_box(sshd, "nopython", tmp_path / "wd", python="/nonexistent/bin/python3"), sshd)
    spec_file = tmp_path / "job.toml"
    spec_file.write_text('kind = "debug.sleep"\nsteps = 1\n')

    # The real command for one of them: exit code 2 and exactly one line on stderr.
    proc = subprocess.run([sys.executable, "-c", "from slayer_console.cli import main; main()", "--home", str(home),
                           "run", str(spec_file), "--box", "nopython"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "/nonexistent/bin/python3" in proc.stderr and "slayer boxes bootstrap nopython" in proc.stderr
    for name, needles in {"nokey": ["key file /nonexistent/id_ed25519 not found"],
                          "noport": ["cannot reach", "connection refused"]}.items():
        error = slayer(home, "boxes", "check", name).exception
        assert isinstance(error, SpecError) and "\n" not in str(error)
        assert all(n in str(error) for n in needles), error

    checked = slayer(home, "boxes", "check", "nopython")
    assert checked.exit_code == 1 and "no working python at /nonexistent/bin/python3" in checked.output


def _processes_with(argv: list[str]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:-1] == [a.encode() for a in argv]:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def test_cancel_ends_the_whole_remote_process_group(sshd, home, tmp_path):
    marker = f"{random.randint(100000, 999999)}.5"
    wrapper = tmp_path / "python-with-child"
    # The job's python starts a helper child, as data loaders do; cancel must take it down too.
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *"-m engine run"*) sleep {marker} & ;; esac\n'
                       f'exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    register(home, engine_box(sshd, "b", tmp_path / "wd", python=str(wrapper)), sshd)
    store = Store.open(str(home / "slayer.db"))

    async def launch_then_cancel() -> tuple[str, str]:
        run = await launch_remote(home, store, "b", sleep_spec(600))
        deadline = time.time() + 20
        while not (_processes_with(["sleep", marker]) and Path(run.run_dir, "events.jsonl").exists()):
            assert time.time() < deadline
            await asyncio.sleep(0.05)
        return run.run_id, await cancel_remote(home, store, run.run_id)

    run_id, status = asyncio.run(launch_then_cancel())
    assert status == "cancelled"
    run = get_run(store, run_id)
    assert run.status == "cancelled" and "cancelled by SIGTERM" in run.error
    assert _processes_with(["sleep", marker]) == []
    assert not Path(f"/proc/{run.pid}/cmdline").exists() or not Path(f"/proc/{run.pid}/cmdline").read_bytes()

    again = slayer(home, "runs", "cancel", run_id)
    assert "is not running" in str(again.exception)


def test_two_boxes_run_jobs_at_once_and_both_are_ingested(sshd_factory, home, tmp_path, store_url):
    for name in ("left", "right"):
        server = sshd_factory()
        register(home, engine_box(server, name, tmp_path / name), server)
    put_box(home, get_box(home, "left").model_copy(update={"name": "gone", "port": free_port()}))
    store = Store.open(store_url)
    states: list[str] = []
    results = asyncio.run(fan_out(home, store, [sleep_spec(15), sleep_spec(15)], ["left", "gone", "right"],
                                  on_state=states.append))
    assert sorted(r.box for r in results) == ["left", "right"]  # the unreachable box took nothing
    assert any("box gone takes no more jobs" in s for s in states)
    assert [r.status for r in results] == ["succeeded", "succeeded"]
    a, b = (get_run(store, r.run_id) for r in results)
    assert a.started_ms < b.ended_ms and b.started_ms < a.ended_ms  # overlapping: at once
    for r in results:
        assert_ingested_once(store, r.run_id, get_run(store, r.run_id).run_dir)


def test_a_box_behind_a_jump_host(sshd_factory, home, tmp_path):
    jump, inner = sshd_factory(), sshd_factory()
    # One key opens both, as with a bastion; the jump host's key is pinned like any other.
    jump.root.joinpath("authorized_keys").write_text(inner.root.joinpath("authorized_keys").read_text())
    register(home, jump.box("bastion", key=str(inner.client_key)), jump)
    box = engine_box(inner, "inner", tmp_path / "wd", jump=f"{jump.box('x').user}@127.0.0.1:{jump.port}")
    put_box(home, box)
    checked = slayer(home, "boxes", "check", "inner", "--accept-host-key", inner.fingerprint, "--format", "json")
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["host_key"] == inner.fingerprint
    jump.stop()
    assert "cannot reach" in str(slayer(home, "boxes", "check", "inner").exception)
