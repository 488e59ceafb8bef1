"""The light core install — a fresh virtual environment, `pip install -e .` with no extras — is what an
operator puts on the laptop that drives the boxes. It runs every console command that does not train or
score against a store built elsewhere, drives a box over real SSH, and the TUI under a Pilot; the commands
that need the ML stack say in one line which extra to install (exit 2, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sshd import sshd, sshd_factory  # noqa: F401  (fixtures)
from tui_pilot import campaign, campaign_db  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
ML = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "llama_cpp")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def core_bin(tmp_path_factory) -> Path:
    """bin/ of a new virtual environment holding this checkout installed without extras."""
    venv = tmp_path_factory.mktemp("core") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-e", str(ROOT)],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv / "bin"


def core_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SLAYER_HOME", "SLAYER_DB")}
    return {**env, "COLUMNS": "200"}


def slayer(core_bin: Path, home: Path, *args: str, input: str | None = None, expect: int = 0) -> str:
    proc = subprocess.run([str(core_bin / "slayer"), "--home", str(home), *args], input=input, capture_output=True,
                          text=True, timeout=180, env=core_env(), cwd=home)
    assert proc.returncode == expect, f"slayer {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout + proc.stderr


def test_the_core_install_has_no_ml_stack_yet_reads_decides_and_cards(core_bin, campaign):
    home = campaign.home
    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])" % (ML,)
    found = subprocess.run([str(core_bin / "python"), "-c", probe], capture_output=True, text=True, env=core_env())
    assert found.stdout.strip() == "[]", found.stdout + found.stderr
    assert "deltas" in slayer(core_bin, home, "--help")

    runs = json.loads(slayer(core_bin, home, "runs", "--format", "json"))
    assert [r["id"] for r in runs] == ["run-gates"]
    assert "succeeded" in slayer(core_bin, home, "runs", "show", "run-gates")
    deltas = json.loads(slayer(core_bin, home, "deltas", "slayer-v2", "--format", "json"))
    verdicts = {row["name"]: row["verdict"] for row in deltas["rows"]}
    assert verdicts["ckpt-3200"] == "FAIL"  # mbpp −15 pp, significant
    from store.deltas import delta_table

    full = delta_table(campaign.store(), "slayer-v2")  # the same table computed by the full install
    assert verdicts == {row.name: row.verdict for row in full.rows}
    assert "ckpt-1600" in slayer(core_bin, home, "select", "slayer-v2", "--lambda", "2")
    slayer(core_bin, home, "decide", "ckpt-1600", "accept", "--reason", "clean gain")
    card = home / "card.md"
    slayer(core_bin, home, "card", "slayer-v2", "--out", str(card))
    text = card.read_text()
    assert text.startswith("---\n") and "model-index:" in text and "# ckpt-1600" in text
    gates = json.loads(slayer(core_bin, home, "gates", "--format", "json"))
    assert {"polish_psc", "mmlu"} <= {g["name"] for g in gates}
    assert "train.sft" in slayer(core_bin, home, "jobs", "kinds")
    assert "schema at" in slayer(core_bin, home, "db", "upgrade")


def test_the_core_install_runs_follows_cancels_and_ingests_local_jobs(core_bin, campaign, tmp_path):
    from engine.jobs import parse_spec
    from engine.runner import run_job

    home = campaign.home
    spec = tmp_path / "sleep.toml"
    spec.write_text('kind = "debug.sleep"\nsteps = 3\ninterval_s = 0.05\n')
    assert "succeeded" in slayer(core_bin, home, "run", str(spec), "--experiment", "laptop")
    spec.write_text('kind = "debug.sleep"\nsteps = 100000\ninterval_s = 0.05\n')
    run_id = slayer(core_bin, home, "run", str(spec), "--detach").strip()
    assert f"{run_id} cancelled" in slayer(core_bin, home, "runs", "cancel", run_id)
    assert "cancelled" in slayer(core_bin, home, "runs", "attach", run_id, "--quiet", expect=1)
    assert "Traceback" not in slayer(core_bin, home, "runs", "logs", run_id)

    copied = tmp_path / "copied-run"  # a run directory written elsewhere, copied by hand
    run_job(parse_spec({"kind": "debug.sleep", "steps": 2, "interval_s": 0.0}, "test"), copied, "copied-run")
    assert "status succeeded" in slayer(core_bin, home, "ingest", str(copied), "--experiment", "laptop")
    laptop = json.loads(slayer(core_bin, home, "runs", "--experiment", "laptop", "--format", "json"))
    assert {r["id"] for r in laptop} >= {"copied-run"} and len(laptop) == 2


def test_the_core_install_bootstraps_and_drives_a_box_over_ssh(core_bin, sshd, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    user = sshd.box("gb10").user
    slayer(core_bin, home, "boxes", "add", "gb10", "--ssh", f"{user}@127.0.0.1:{sshd.port}",
           "--key", str(sshd.client_key), "--workdir", str(tmp_path / "wd"), input="y\n")
    # the laptop builds this project's wheel and installs it with [ml] into a venv on the box, whose base
    # python (this interpreter, seen through --system-site-packages) already has the ML stack
    booted = slayer(core_bin, home, "boxes", "bootstrap", "gb10", "--base-python", sys.executable)
    assert "wheel installed" in booted, booted
    report = json.loads(slayer(core_bin, home, "boxes", "check", "gb10", "--format", "json"))
    assert report["torch"] and report["engine"] and report["host_key"] == sshd.fingerprint
    spec = tmp_path / "sleep.toml"
    spec.write_text('kind = "debug.sleep"\nsteps = 5\ninterval_s = 0.05\n')
    assert "succeeded" in slayer(core_bin, home, "run", str(spec), "--box", "gb10", "--quiet")
    slayer(core_bin, home, "boxes", "remove", "gb10")
    assert "gb10" not in slayer(core_bin, home, "boxes")


@pytest.mark.parametrize("args, extra", [
    (["run", "{sft}"], "ml"),
    (["gate", "run", "--model", "Qwen/Qwen3.5-27B", "--suite", "core", "--out", "{out}"], "ml"),
    (["demo", "--fast"], "ml,gguf"),
    (["data", "klej", "--task", "8tags={parquet}", "--out", "{out}"], "ml"),  # Parquet is read with pyarrow
])
def test_commands_that_need_the_ml_stack_name_the_extra(core_bin, tmp_path, args, extra):
    sft = tmp_path / "sft.toml"
    sft.write_text(slayer(core_bin, tmp_path, "jobs", "example", "train.sft"))
    parquet = ROOT / "tests" / "data" / "klej" / "8tags_train.parquet"
    args = [a.format(sft=sft, out=tmp_path / "out", parquet=parquet) for a in args]
    proc = subprocess.run([str(core_bin / "slayer"), "--home", str(tmp_path), *args], capture_output=True,
                          text=True, timeout=60, env=core_env())
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and f"pip install 'slayer-console[{extra}]'" in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing started


def test_the_console_on_the_core_install(core_bin, campaign):
    """Every screen, accept/reject, Pareto, card export, a local job and a refused training launch."""
    from store.decisions import decisions_for

    proc = subprocess.run([str(core_bin / "python"), str(ROOT / "tests" / "core_console_session.py"),
                           str(campaign.home)], capture_output=True, text=True, timeout=300, env=core_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert [(d.name, d.verdict, d.reason) for d in decisions_for(campaign.store(), "slayer-v2")] == [
        ("ckpt-1600", "accept", "gain"), ("ckpt-3200", "reject", "mbpp")]
    card = (campaign.home / "cards" / "slayer-v2.md").read_text()
    assert card.startswith("---\n") and "# ckpt-1600" in card


def test_a_job_that_meets_a_missing_extra_names_it_in_its_error(tmp_path):
    """On a box, or in a job whose kind runs on the core but whose config reaches the ML stack, the run's
    recorded error says which extra to install."""
    from engine.jobs import JobConfig, JobKind, JobSpec
    from engine.runner import run_job

    def needs_torch(config, ctx):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")  # what the import raises there

    kind = JobKind("test.needs_torch", "", JobConfig, needs_torch, "", needs_ml=False)  # not registered
    assert run_job(JobSpec(kind, JobConfig()), tmp_path / "run") == "failed"
    last = json.loads((tmp_path / "run" / "events.jsonl").read_text().splitlines()[-1])
    assert last["error"] == "ModuleNotFoundError: No module named 'torch' (pip install 'slayer-console[ml]')"
