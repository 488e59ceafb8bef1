"""The `gate` job and `slayer gate run` end to end on tiny models: events, result files, audit lines, refusals."""

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from engine.datafiles import read_rows
from engine.jobs import parse_spec
from engine.runner import run_job
from engine.tiny.build import tiny_model_dir
from slayer_console.cli import cli

DATA = Path(__file__).parent / "data" / "gates"
FILES = {"polish_psc": str(DATA / "psc.jsonl"), "polish_8tags": str(DATA / "8tags.jsonl")}
EVENT_KEYS = {"subject", "gate", "axis", "scorer", "metrics", "primary", "higher_is_better", "stderr", "n",
              "outcomes", "preds", "golds", "fingerprint", "tolerance_pp", "elapsed_s", "items_per_s"}


def item_texts() -> set[str]:
    return {v for f in FILES.values() for row in read_rows(f) for v in row.values() if isinstance(v, str)}


def test_two_subjects_two_gates(tmp_path):
    base, other = tiny_model_dir("qwen3", 0), tiny_model_dir("qwen3", 1)
    spec = parse_spec({
        "kind": "gate", "gates": ["polish_psc", "polish_8tags"], "files": FILES, "batch_size": 8,
        "samples": "samples.jsonl",
        "subjects": [{"name": "base", "model": str(base)}, {"name": "other", "kind": "reference", "model": str(other)}],
    }, "test")
    assert run_job(spec, tmp_path / "run") == "succeeded"
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    results = [e for e in events if e["type"] == "gate_result"]
    assert [(r["subject"]["name"], r["gate"]) for r in results] == [
        ("base", "polish_psc"), ("base", "polish_8tags"), ("other", "polish_psc"), ("other", "polish_8tags")]
    # one progress event per batch: 30 psc items and 32 8tags items in batches of 8, for each subject
    assert len([e for e in events if e["type"] == "progress"]) == 2 * (4 + 4)
    for r in results:
        assert set(r) - {"run", "seq", "ts", "type"} == EVENT_KEYS
        assert len(r["outcomes"]) == r["n"] == len(r["preds"]) == len(r["golds"])
        assert r["fingerprint"]["n"] == r["n"] and r["fingerprint"]["bos"] is False
        stored = json.loads((tmp_path / "run" / "outputs" / "results" / r["subject"]["id"]
                             / f"gate_{r['gate']}.json").read_text())
        assert stored["metrics"] == r["metrics"] and stored["outcomes"] == r["outcomes"]
    psc = [r for r in results if r["gate"] == "polish_psc"]
    assert psc[0]["fingerprint"] == psc[1]["fingerprint"]  # same settings: the two subjects are comparable
    assert psc[0]["subject"]["id"] != psc[1]["subject"]["id"]
    assert psc[0]["primary"] == "f1" and set(psc[0]["metrics"]) == {"f1", "acc"}
    assert psc[0]["outcomes"] == [float(p == g) for p, g in zip(psc[0]["preds"], psc[0]["golds"])]
    audit = [json.loads(line) for line in (tmp_path / "run" / "outputs" / "samples.jsonl").read_text().splitlines()]
    assert len(audit) == 2 * (30 + 32)
    assert all(len(a["loglikelihoods"]) == (2 if a["gate"] == "polish_psc" else 8) for a in audit)
    written = (tmp_path / "run" / "events.jsonl").read_text() + "".join(
        p.read_text() for p in (tmp_path / "run" / "outputs").rglob("*.json*"))
    assert not [t for t in item_texts() if t in written]  # no item text anywhere


def test_cli_gate_run_and_ingest(tmp_path):
    model = tiny_model_dir("qwen3", 0)
    out = tmp_path / "g"
    res = CliRunner().invoke(cli, [
        "--home", str(tmp_path / "home"), "gate", "run", "--model", str(model), "--gate",
        f"polish_psc={FILES['polish_psc']}", "--limit", "6", "--samples", str(tmp_path / "s.jsonl"),
        "--out", str(out), "--experiment", "exp1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    result = json.loads((out / "results" / "gate_polish_psc.json").read_text())
    assert result["n"] == 6 and result["subject"]["name"] == model.name
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 6
    from sqlmodel import select

    from store import Store
    from store.models import GateResult

    store = Store.open(f"sqlite:///{tmp_path / 'home' / 'slayer.db'}")
    with store.session() as s:
        rows = s.execute(select(GateResult)).scalars().all()
    assert [(r.gate, r.n) for r in rows] == [("polish_psc", 6)]
    listing = CliRunner().invoke(cli, ["gates", "--format", "json"])
    gates = {g["name"]: g for g in json.loads(listing.output)}
    assert gates["polish_psc"]["axis"] == "pl_nlu" and gates["mbpp"]["scorer"] == "code_exec"


def run_cli(tmp_path, *args):
    """`slayer ARGS` in a fresh process: exit code and stderr as a user sees them."""
    code = f"import sys; sys.argv = ['slayer', *{list(args)!r}]; from slayer_console.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"SLAYER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


def test_code_gates_refuse_without_explicit_permission(tmp_path):
    mbpp = tmp_path / "mbpp.jsonl"
    mbpp.write_text(json.dumps({"text": "t", "code": "c", "test_list": ["a", "b", "c"], "test_setup_code": ""}) + "\n")
    proc = run_cli(tmp_path, "gate", "run", "--model", "unused", "--gate", f"mbpp={mbpp}", "--out", "o")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--allow-code-exec" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_bad_local_file_is_exit_2_with_one_line(tmp_path):
    bad = tmp_path / "psc.jsonl"
    bad.write_text(json.dumps({"extract_text": "t", "summary_text": "s", "label": 7}) + "\n")
    proc = run_cli(tmp_path, "gate", "run", "--model", "unused", "--gate", f"polish_psc={bad}", "--out", "o")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {bad}: gate polish_psc: row 1: label 7 is outside the label set 0..1")


def test_the_printed_example_is_a_valid_gate_job():
    import tomllib

    from engine.gates.job import EXAMPLE, GateJobConfig
    from engine.gates.run import resolve_gates

    data = tomllib.loads(EXAMPLE)
    assert data.pop("kind") == "gate" and data.pop("name")
    config = GateJobConfig.model_validate(data)
    assert [g.name for g in resolve_gates(config.suite, config.gates)] == ["polish_psc"]
