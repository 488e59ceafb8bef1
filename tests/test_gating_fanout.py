"""`[gates] mode = "fanout"`: `slayer run` trains here while its follower gates each checkpoint on one of two
gate boxes (real sshd on loopback, real gate jobs there), with the same results and fingerprints as in-process
gating; a gate box that is unknown or unreachable is one line before anything is launched."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from train_fixtures import FAST, chat_file, of_type, psc_file, run_in_process, tiny_model

from conftest import free_port
from engine.errors import SpecError
from engine.jobs import dumps_toml
from remotes.boxes import get_box, put_box
from slayer_console.cli import cli
from sshd import engine_box, register, sshd, sshd_factory  # noqa: F401  (fixtures)
from store import Store
from store.models import Experiment, GateResult, Run, Subject
from store.queries import get_run


def _job(tmp_path, mode: str, experiment: str, **gates) -> dict:
    chat, psc = tmp_path / "chat.jsonl", tmp_path / "psc.jsonl"
    if not chat.exists():
        chat_file(chat), psc_file(psc)
    return {"kind": "train.sft", "name": "sft", "experiment": experiment, "model": tiny_model(), "data": str(chat),
            "adapter": {"method": "dora", "rank": 8, "use_rslora": True},
            "training": {**FAST, "max_steps": 4, "save_steps": 2},
            "gates": {"gates": ["polish_psc"], "files": {"polish_psc": str(psc)}, "limit": 8, "device": "cpu",
                      "mode": mode, **gates}}


def _results(store: Store, experiment: str) -> dict:
    with store.session() as s:
        rows = s.execute(select(Subject.name, GateResult.gate, GateResult.fingerprint, GateResult.outcomes,
                                GateResult.metrics, Run.id, Run.box)
                         .join(Subject, GateResult.subject_pk == Subject.id)
                         .join(Run, GateResult.run_id == Run.id)
                         .join(Experiment, Subject.experiment_id == Experiment.id)
                         .where(Experiment.name == experiment)).all()
    return {(name, gate): (fp, outcomes, metrics, run, box) for name, gate, fp, outcomes, metrics, run, box in rows}


def test_fanout_gates_each_checkpoint_on_a_gate_box_as_in_process_gating_would(sshd_factory, home, tmp_path):
    for name in ("g1", "g2"):
        server = sshd_factory()
        register(home, engine_box(server, name, tmp_path / name), server)
        checked = CliRunner().invoke(cli, ["--home", str(home), "boxes", "check", name])  # the plan reads it
        assert checked.exit_code == 0, checked.output
    status, reference = run_in_process(tmp_path / "ref", **_job(tmp_path, "in_process", "ref"))
    assert status == "succeeded"
    spec = tmp_path / "fanout.toml"
    spec.write_text(dumps_toml(_job(tmp_path, "fanout", "fan", boxes=["g1", "g2"])), encoding="utf-8")

    ran = CliRunner().invoke(cli, ["--home", str(home), "run", str(spec), "--quiet"])
    assert ran.exit_code == 0, ran.output

    store = Store.open(str(home / "slayer.db"))
    got = _results(store, "fan")
    assert set(got) == {("base", "polish_psc"), ("sft-ckpt-2", "polish_psc"), ("sft-ckpt-4", "polish_psc")}, ran.output
    with store.session() as s:
        train_run = s.execute(select(Run.id).where(Run.kind == "train.sft")).scalar_one()
    for (name, _), (_, _, _, run_id, box) in got.items():  # each checkpoint's job ran on a gate box, under its id
        step = 2 if name in ("base", "sft-ckpt-2") else 4
        assert run_id == f"{train_run}-gate-ckpt-{step}" and box in ("g1", "g2")
        if name != "base":  # scoring the adapter uploaded into that box's workdir
            job = tomllib.loads(Path(get_run(store, run_id).run_dir, "job.toml").read_text())
            adapter = Path(next(s["adapter"] for s in job["subjects"] if s["name"] == name))
            assert adapter.parent == tmp_path / box / "inputs" and (adapter / "adapter_model.safetensors").is_file()
    ours = {(g["subject"]["name"], g["gate"]): g for g in of_type(reference, "gate_result")}
    for key, (fingerprint, outcomes, metrics, _, _) in got.items():
        assert fingerprint == ours[key]["fingerprint"] and outcomes == ours[key]["outcomes"], key
        assert metrics == ours[key]["metrics"], key
    # the checkpoints keep the identity the training run gave them (the adapter had another path on the gate box)
    with store.session() as s:
        kinds = dict(s.execute(select(Subject.name, Subject.run_id).where(Subject.kind == "checkpoint")).all())
    assert kinds == {"sft-ckpt-2": train_run, "sft-ckpt-4": train_run}
    events = [json.loads(line) for line in (home / "runs" / train_run / "events.jsonl").read_text().splitlines()]
    assert not of_type(events, "gate_result")  # the training process gated nothing itself


def test_an_unknown_unchecked_or_unreachable_gate_box_is_one_line_and_nothing_is_launched(sshd_factory, home,
                                                                                          tmp_path):
    server = sshd_factory()
    register(home, engine_box(server, "g1", tmp_path / "g1"), server)
    register(home, engine_box(server, "unchecked", tmp_path / "g1"), server)
    assert CliRunner().invoke(cli, ["--home", str(home), "boxes", "check", "g1"]).exit_code == 0
    put_box(home, get_box(home, "g1").model_copy(update={"name": "down", "port": free_port()}))
    (home / "box_checks" / "down.json").write_text((home / "box_checks" / "g1.json").read_text())  # checked, then gone
    for gates, needle in (({"boxes": ["g1", "nope"]}, "no box 'nope'"), ({"boxes": ["down"]}, "cannot reach"),
                          ({"boxes": ["unchecked"]}, "box 'unchecked' was never checked")):
        spec = tmp_path / "fanout.toml"
        spec.write_text(dumps_toml(_job(tmp_path, "fanout", "fan", **gates)), encoding="utf-8")
        ran = CliRunner().invoke(cli, ["--home", str(home), "run", str(spec)])
        error = str(ran.exception)
        assert isinstance(ran.exception, SpecError) and "\n" not in error and needle in error, error
        assert "[gates] boxes" in error and "take it out of the list" in error
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_a_remote_training_runs_request_and_adapter_come_through_its_driver(sshd, home, tmp_path):
    """What the follower needs from a training run on an ssh box: a file read over SFTP, a checkpoint's adapter
    files pulled home (its optimizer state left there)."""
    import asyncio

    from engine.train.run import ADAPTER_FILES
    from remotes.drivers import driver_for
    from store.ingest import register_run

    register(home, engine_box(sshd, "trainer", tmp_path / "wd"), sshd)
    run_dir = (tmp_path / "wd" / "runs" / "r1").resolve()
    ckpt = run_dir / "outputs" / "checkpoints" / "checkpoint-2"
    ckpt.mkdir(parents=True)
    for name, data in {"adapter_config.json": b"{}", "adapter_model.safetensors": b"x" * 5000,
                       "optimizer.pt": b"y" * 9000}.items():
        (ckpt / name).write_bytes(data)
    store = Store.open(str(home / "slayer.db"))
    register_run(store, "r1", kind="train.sft", run_dir=str(run_dir), box="trainer")
    driver, run = driver_for(home, store, "trainer"), get_run(store, "r1")
    assert asyncio.run(driver.read_file(run, "outputs/checkpoints/checkpoint-2/adapter_config.json")) == b"{}"
    assert asyncio.run(driver.read_file(run, "outputs/gates/ckpt-2/fanout.toml")) is None
    here = asyncio.run(driver.fetch(run, str(ckpt), ADAPTER_FILES))
    assert here == home / "runs" / "r1" / "outputs" / "checkpoints" / "checkpoint-2"
    assert (here / "adapter_model.safetensors").read_bytes() == b"x" * 5000 and not (here / "optimizer.pt").exists()
