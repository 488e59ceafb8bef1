"""docs/ARCHITECTURE.md's "Add a new …" recipes, each done once: a job kind is one module, a gate one TOML file,
a scorer one decorated function, an axis one vocabulary row, a screen one row of the MODES table."""

from __future__ import annotations

import importlib
import sys
import time
import tomllib
from pathlib import Path

import pytest

from engine import jobs, vocab
from engine.gates import scoring

ROOT = Path(__file__).resolve().parents[1]
ARC_EASY = (ROOT / "assets" / "gates" / "arc_easy.toml").read_text()

HELLO_KIND = '''
from pydantic import Field

from engine.jobs import JobConfig, job_kind


class HelloConfig(JobConfig):
    greeting: str = Field("cześć", description="what to write to outputs/hello.txt")


EXAMPLE = 'kind = "example.hello"\\ngreeting = "dzień dobry"   # written to outputs/hello.txt\\n'


@job_kind("example.hello", HelloConfig, "write a greeting (the architecture test's job kind)", EXAMPLE)
def run_hello(config, ctx):
    path = ctx.outputs / "hello.txt"
    path.write_text(config.greeting, encoding="utf-8")
    ctx.progress(1, 1, "files")
    ctx.artifact(path, "text", language="pl")
'''


@pytest.fixture
def scratch_registries(monkeypatch):
    """Registrations made by a test are forgotten after it."""
    for registry in (jobs._KINDS, scoring._SCORERS):
        registry.all()
        monkeypatch.setattr(registry, "_items", dict(registry._items))
        monkeypatch.setattr(registry, "_origins", dict(registry._origins))


def test_a_new_job_kind_is_one_module(tmp_path, monkeypatch, scratch_registries, store_url):
    from engine.runner import run_job
    from store import Store
    from store.ingest import ingest_run_dir
    from store.queries import get_run

    (tmp_path / "hello_kind.py").write_text(HELLO_KIND, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hello_kind", raising=False)
    importlib.import_module("hello_kind")  # what KIND_MODULES does for a listed module

    kind = jobs.get_kind("example.hello")
    spec = jobs.parse_spec(tomllib.loads(kind.example), "example")
    assert run_job(spec, tmp_path / "run", run_id="hello-1") == "succeeded"
    assert (tmp_path / "run" / "outputs" / "hello.txt").read_text(encoding="utf-8") == "dzień dobry"
    store = Store.open(store_url)
    ingest_run_dir(store, tmp_path / "run", experiment="arch")
    run = get_run(store, "hello-1")
    assert (run.kind, run.status, run.progress_done) == ("example.hello", "succeeded", 1)


def test_a_new_gate_is_one_toml_file_and_a_new_scorer_one_function(tmp_path, scratch_registries):
    from engine.gates.run import resolve_gates
    from engine.gates.scoring import ScoreOutput, scorer

    @scorer("always_right", version="1", metrics=lambda gate: {"acc"})
    def always_right(items, backend, settings):
        n = len(items.rows)
        return ScoreOutput({"acc": 1.0}, {"acc": 0.0}, {"acc": [1.0] * n})

    gate = tmp_path / "arc_easy_trivial.toml"
    gate.write_text(ARC_EASY.replace('name = "arc_easy"', 'name = "arc_easy_trivial"')
                    .replace('scorer = "likelihood"', 'scorer = "always_right"')
                    .replace('metrics = ["acc", "acc_norm"]', 'metrics = ["acc"]')
                    .replace('primary = "acc_norm"', 'primary = "acc"'), encoding="utf-8")
    [resolved] = resolve_gates(None, [str(gate)])
    assert (resolved.name, resolved.scorer, resolved.axis) == ("arc_easy_trivial", "always_right", "reasoning")


@pytest.mark.parametrize("axis", list(vocab.AXES))
def test_an_axis_row_is_all_an_axis_needs(axis):
    from engine.gates.spec import parse_gate
    from slayer_console.widgets.delta_grid import axis_label

    data = tomllib.loads(ARC_EASY)
    gate = parse_gate({**data, "axis": axis}, "gate.toml")  # gates may name it
    record = vocab.AXES[axis]
    assert gate.axis == axis and axis_label(axis) == record.label
    assert (axis in vocab.GENERAL_AXES) == (record.group == "general")
    assert (axis in vocab.STYLE_AXES) == (record.group == "style")
    assert record.section and record.label


def test_a_screen_is_one_row_of_the_modes_table():
    from slayer_console.app import SlayerApp
    from slayer_console.modes import MODES
    from slayer_console.widgets.nav import NavBar

    assert list(SlayerApp.MODES) == [m.name for m in MODES]
    keys = {b.key: b.action for b in SlayerApp.BINDINGS}
    nav = NavBar(MODES[0].name).render().plain
    for mode in MODES:
        assert SlayerApp.MODES[mode.name].MODE == mode.name
        assert keys[mode.key] == f"switch_mode('{mode.name}')"
        assert f"{mode.key} {mode.label}" in nav


def test_a_transport_is_a_driver_class(tmp_path, home, monkeypatch):
    """`slayer run` reaches a box only through its driver: swap the class for a box kind and the CLI uses it."""
    from click.testing import CliRunner

    from remotes import drivers
    from slayer_console.cli import cli

    calls = []

    class Recording(drivers.LocalDriver):
        async def launch(self, spec, spec_path, **kwargs):
            handle = await super().launch(spec, spec_path, **kwargs)
            calls.append(("launch", handle.box))
            return handle

        async def follow(self, run_id, **kwargs):
            calls.append(("follow", run_id))
            return await super().follow(run_id, **kwargs)

    monkeypatch.setitem(drivers.DRIVERS, "local", Recording)
    spec = tmp_path / "job.toml"
    spec.write_text('kind = "debug.sleep"\nsteps = 2\ninterval_s = 0\n')
    result = CliRunner().invoke(cli, ["run", str(spec), "--quiet"])
    assert result.exit_code == 0, result.output
    run_id = result.stdout.split()[0]
    assert calls == [("launch", "local"), ("follow", run_id)]


def test_the_local_driver_registers_before_the_job_starts_and_cancels(tmp_path, home):
    import asyncio

    from engine.errors import SpecError
    from remotes.drivers import RunHandle, driver_for
    from store import Store
    from store.ingest import ingest_run_dir
    from store.queries import get_run

    store = Store.open(f"sqlite:///{home / 'slayer.db'}")
    driver = driver_for(home, store, "local")
    spec_path = tmp_path / "job.toml"
    spec_path.write_text('kind = "debug.sleep"\nsteps = 200\ninterval_s = 0.05\n')
    handle = asyncio.run(driver.launch(jobs.load_spec(spec_path), spec_path, experiment="arch"))
    assert isinstance(handle, RunHandle)
    row = get_run(store, handle.run_id)  # there before the job wrote anything
    assert (row.box, row.experiment, row.pid) == ("local", "arch", handle.pid)
    deadline = time.monotonic() + 60
    while get_run(store, handle.run_id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        if (Path(handle.run_dir) / "events.jsonl").exists():
            ingest_run_dir(store, handle.run_dir)
    assert asyncio.run(driver.cancel(handle.run_id)) == "cancelled"
    with pytest.raises(SpecError, match="is not running"):
        asyncio.run(driver.cancel(handle.run_id))
