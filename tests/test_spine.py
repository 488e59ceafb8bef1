"""The spine end to end: job specs, the runner's run directory, ingest, and the `slayer` CLI on bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.jobs import load_spec, parse_spec
from store import Store
from store.ingest import ingest_run_dir
from store.models import Metric, Run
from store.queries import count_rows, get_run, list_runs

ROOT = Path(__file__).resolve().parents[1]


def slayer(*args, home: Path, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLAYER_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "slayer_console", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout, check=check)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_engine_run_writes_a_complete_run_dir(tmp_path):
    spec = write(tmp_path / "job.toml", 'kind = "debug.sleep"\nsteps = 3\ninterval_s = 0\n')
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "engine", "run", str(spec), "--run-dir", str(run_dir)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    evs = events(run_dir)
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert [e["status"] for e in evs if e["type"] == "status"] == ["queued", "running", "succeeded"]
    assert [e["value"] for e in evs if e["type"] == "metric"] == [0.5, 1.0, 1.5]
    assert all(e["run"] == "run" for e in evs)
    resolved = tomllib.loads((run_dir / "job.toml").read_text())
    assert resolved == {"kind": "debug.sleep", "steps": 3, "interval_s": 0.0, "fail_at": 0}
    assert (run_dir / "outputs").is_dir() and (run_dir / "log.txt").exists()


def test_failed_job_records_the_error(tmp_path):
    spec = write(tmp_path / "job.toml", 'kind = "debug.sleep"\nsteps = 3\ninterval_s = 0\nfail_at = 2\n')
    proc = subprocess.run([sys.executable, "-m", "engine", "run", str(spec), "--run-dir", str(tmp_path / "r")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1
    last = events(tmp_path / "r")[-1]
    assert last["status"] == "failed" and "asked to fail at step 2" in last["error"]
    assert "asked to fail at step 2" in proc.stderr
    assert "Traceback" in (tmp_path / "r" / "log.txt").read_text()


def test_sigterm_ends_a_job_cleanly_as_cancelled(tmp_path):
    spec = write(tmp_path / "job.toml", 'kind = "debug.sleep"\nsteps = 1000\ninterval_s = 0.05\n')
    run_dir = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "engine", "run", str(spec), "--run-dir", str(run_dir)], cwd=ROOT)
    deadline = time.time() + 30
    while time.time() < deadline and not (
            (run_dir / "events.jsonl").exists() and any(e["type"] == "metric" for e in events(run_dir))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 1
    assert events(run_dir)[-1]["status"] == "cancelled"


@pytest.mark.parametrize("text,message", [
    ('kind = "debug.sleep"\nsteps = \n', "malformed TOML"),
    ('kind = "no.such"\n', "unknown job kind 'no.such'"),
    ('kind = "debug.sleep"\nstepz = 3\n', "unknown key 'stepz'"),
    ('kind = "debug.sleep"\nsteps = "many"\n', "field 'steps' must be an integer"),
    ('steps = 3\n', "missing required key 'kind'"),
])
def test_bad_specs_are_one_line_errors(tmp_path, text, message):
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_every_job_example_parses_as_printed():
    from engine.jobs import kinds

    for kind in kinds():
        spec = parse_spec(tomllib.loads(kind.example), f"example of {kind.name}")
        assert spec.kind.name == kind.name


def test_a_name_registered_twice_is_refused():
    from engine.gates.scoring import get_scorer, scorer
    from engine.jobs import JobConfig, get_kind, job_kind

    get_kind("debug.sleep")
    with pytest.raises(ValueError, match="job kind 'debug.sleep' is registered twice"):
        job_kind("debug.sleep", JobConfig, "a second sleep", "")(lambda config, ctx: None)
    get_scorer("likelihood")
    with pytest.raises(ValueError, match="scorer 'likelihood' is registered twice"):
        scorer("likelihood", version="1", metrics=lambda gate: set())(lambda items, backend, settings: None)
    assert get_kind("debug.sleep").description != "a second sleep"


def _write_events(path: Path, n: int, run: str = "r1") -> bytes:
    lines = [{"run": run, "seq": 1, "ts": 1.0, "type": "status", "status": "queued", "kind": "debug.sleep",
              "experiment": "e1"},
             {"run": run, "seq": 2, "ts": 1.0, "type": "status", "status": "running"}]
    lines += [{"run": run, "seq": i + 3, "ts": 2.0, "type": "metric", "key": "loss", "value": i / 10, "step": i}
              for i in range(n)]
    lines.append({"run": run, "seq": n + 3, "ts": 3.0, "type": "status", "status": "succeeded"})
    data = "".join(json.dumps(e) + "\n" for e in lines).encode()
    path.write_bytes(data)
    return data


def _snapshot(store: Store, run_id: str = "r1"):
    return (count_rows(store, Metric), get_run(store, run_id).status,
            [(r.id, r.experiment, r.kind, r.status) for r in list_runs(store)])


def test_ingest_is_idempotent_and_resumable_at_any_byte(tmp_path, store_url):
    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    data = _write_events(run_dir / "events.jsonl", 50)
    clean = Store.open(f"sqlite:///{tmp_path / 'clean.db'}")
    ingest_run_dir(clean, run_dir)
    store = Store.open(store_url)
    # Feed the file as it grows, cutting lines in half: every prefix, then the whole file twice.
    for cut in range(0, len(data), 97):
        (run_dir / "events.jsonl").write_bytes(data[:cut])
        ingest_run_dir(store, run_dir)
    (run_dir / "events.jsonl").write_bytes(data)
    ingest_run_dir(store, run_dir)
    ingest_run_dir(store, run_dir)
    assert _snapshot(store) == _snapshot(clean) == (50, "succeeded", [("r1", "e1", "debug.sleep", "succeeded")])


@pytest.mark.parametrize("bad_line,message", [
    (b'{"run": "r1", "seq": 7, "ty', "events.jsonl:7: malformed event line"),
    (b'{"run": "r1", "seq": 7, "ts": 2.0, "type": "metric", "value": 1.0}', "events.jsonl:7: metric event without a valid key"),
])
def test_bad_line_in_the_middle_names_file_and_line_and_keeps_rows_before(tmp_path, store_url, bad_line, message):
    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    data = _write_events(run_dir / "events.jsonl", 10).split(b"\n")
    data[6] = bad_line
    (run_dir / "events.jsonl").write_bytes(b"\n".join(data))
    store = Store.open(store_url)
    with pytest.raises(SpecError, match=message):
        ingest_run_dir(store, run_dir)
    assert count_rows(store, Metric) == 4  # seq 3..6
    with pytest.raises(SpecError):  # still an error on the next pass, nothing doubled
        ingest_run_dir(store, run_dir)
    assert count_rows(store, Metric) == 4


def test_cli_bad_input_is_one_line_and_exit_2_and_store_untouched(tmp_path, home):
    good = write(tmp_path / "good.toml", 'kind = "debug.sleep"\nsteps = 2\ninterval_s = 0\n')
    done = slayer("run", str(good), "--quiet", home=home)
    assert done.returncode == 0
    before = (home / "slayer.db").read_bytes()
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "events.jsonl").write_text('{"run": "x", "seq": 1, "ts": 1, "type": "status", "status": "queued"}\n'
                                            '{"run": "x", "seq": 2, "ts": 1, "ty\n{"run": "x", "seq": 3}\n')
    cases = [
        (["run", str(write(tmp_path / "a.toml", "kind = = 1"))], "malformed TOML"),
        (["run", str(write(tmp_path / "b.toml", 'kind = "nope"'))], "unknown job kind 'nope'"),
        (["run", str(write(tmp_path / "c.toml", 'kind = "debug.sleep"\nfoo = 1'))], "unknown key 'foo'"),
        (["run", str(tmp_path / "missing.toml")], "no such file"),
        (["ingest", str(tmp_path / "nowhere")], "not a run directory"),
        (["jobs", "example", "nope"], "unknown job kind 'nope'"),
        (["runs", "show", "nope"], "no run 'nope'"),
        (["deltas", "nope"], "experiment 'nope': no such experiment"),
        (["runs", "cancel", done.stdout.split()[0]], "is not running (status succeeded)"),
    ]
    for args, message in cases:
        proc = slayer(*args, home=home)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, proc.stderr)
    proc = slayer("ingest", str(truncated), home=home)
    assert proc.returncode == 2 and "events.jsonl:2: malformed event line" in proc.stderr
    store = Store.open(f"sqlite:///{home / 'slayer.db'}")
    assert [r.status for r in list_runs(store)] == ["queued", "succeeded"]  # the truncated run kept its 1st line
    assert count_rows(store, Metric) == 2
    assert len(before) > 0


def test_slayer_run_follows_and_ingests_live(tmp_path, home, store_url, monkeypatch):
    monkeypatch.setenv("SLAYER_DB", store_url)
    spec = write(tmp_path / "job.toml", 'kind = "debug.sleep"\nsteps = 5\ninterval_s = 0.02\n')
    proc = slayer("run", str(spec), "--experiment", "exp-a", home=home)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.split()[0]
    out = json.loads(slayer("runs", "--format", "json", home=home).stdout)
    assert [(r["id"], r["experiment"], r["status"], r["progress_done"]) for r in out] == \
        [(run_id, "exp-a", "succeeded", 5)]
    failing = write(tmp_path / "fail.toml", 'kind = "debug.sleep"\nsteps = 3\ninterval_s = 0\nfail_at = 2\n')
    proc = slayer("run", str(failing), "--quiet", home=home)
    assert proc.returncode == 1 and "asked to fail at step 2" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].endswith(" failed")  # work failed: exit 1, one error line


def test_kill_9_of_slayer_run_then_ingest_equals_a_clean_ingest(tmp_path, home, store_url, monkeypatch):
    monkeypatch.setenv("SLAYER_DB", store_url)
    spec = write(tmp_path / "job.toml", 'kind = "debug.sleep"\nsteps = 40\ninterval_s = 0.05\n')
    env = {**os.environ, "SLAYER_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "slayer_console", "run", str(spec), "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = Store.open(store_url)
    deadline = time.time() + 60
    while time.time() < deadline and count_rows(store, Metric) < 5:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    run = list_runs(store)[0]
    assert run.status == "running"
    while get_run(store, run.id).status == "running" and time.time() < deadline:  # the job itself lives on
        ingest_run_dir(store, run.run_dir)
        time.sleep(0.1)
    assert slayer("ingest", run.run_dir, home=home).returncode == 0
    clean = Store.open(f"sqlite:///{tmp_path / 'clean.db'}")
    ingest_run_dir(clean, run.run_dir, experiment="default")
    assert _snapshot(store, run.id) == _snapshot(clean, run.id)
    assert count_rows(store, Metric) == 40


def test_two_runs_and_an_ingester_at_once_no_lock_errors_no_lost_rows(tmp_path, home, store_url, monkeypatch):
    monkeypatch.setenv("SLAYER_DB", store_url)
    spec = write(tmp_path / "job.toml", 'kind = "debug.sleep"\nsteps = 60\ninterval_s = 0.005\n')
    env = {**os.environ, "SLAYER_HOME": str(home)}
    runs = [subprocess.Popen([sys.executable, "-m", "slayer_console", "run", str(spec), "--quiet"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    store = Store.open(store_url)
    # A third process ingests every run dir it sees, over and over, while the two follow theirs.
    ingester = subprocess.Popen([sys.executable, "-c", f"""
import sys, time, pathlib
from store import Store
from store.ingest import ingest_run_dir
st = Store.open({store_url!r})
end = time.time() + 8
while time.time() < end:
    for d in pathlib.Path({str(home / 'runs')!r}).glob('*'):
        if (d / 'events.jsonl').exists():
            ingest_run_dir(st, d)
"""], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=120) for p in runs]
    _, ingest_err = ingester.communicate(timeout=120)
    for p, (out, err) in zip(runs, outs):
        assert p.returncode == 0, err
        assert "locked" not in err
    assert ingester.returncode == 0, ingest_err
    assert count_rows(store, Metric) == 120
    assert sorted(r.status for r in list_runs(store)) == ["succeeded", "succeeded"]
    with store.session() as s:
        assert {r.id for r in s.query(Run)} == {r.id for r in list_runs(store)}


def test_out_of_date_store_says_what_to_run_then_upgrades(tmp_path, home):
    import sqlite3

    sqlite3.connect(home / "slayer.db").close()  # an empty database: no schema yet
    with pytest.raises(SpecError, match="run `slayer db upgrade`"):
        Store.open(str(home / "slayer.db"), upgrade=False)
    proc = slayer("db", "upgrade", home=home)
    current, head = Store.open(str(home / "slayer.db"), upgrade=False).revisions()
    assert proc.returncode == 0 and f"schema at {head}" in proc.stdout and current == head


def test_two_ingesters_of_one_growing_run_at_once_never_double_or_fail(tmp_path, store_url):
    import threading

    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    data = _write_events(run_dir / "events.jsonl", 400)
    (run_dir / "events.jsonl").write_bytes(b"")
    stores = [Store.open(store_url), Store.open(store_url)]
    errors: list[BaseException] = []

    def ingest_until_done(store):
        try:
            while not (count_rows(store, Run) and get_run(store, "r1").status == "succeeded"):
                ingest_run_dir(store, run_dir)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=ingest_until_done, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for cut in range(0, len(data) + 1, len(data) // 20):  # the file grows while both ingest
        (run_dir / "events.jsonl").write_bytes(data[:cut])
        time.sleep(0.02)
    (run_dir / "events.jsonl").write_bytes(data)
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert count_rows(stores[0], Metric) == 400
