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


def test_boxes_check_and_bootstrap_go_through_the_driver(home, monkeypatch):
    """`slayer boxes check/bootstrap` ask the box's driver: the local one probes here and has nothing to install."""
    import json

    from click.testing import CliRunner

    from engine.errors import UserError
    from remotes import drivers
    from slayer_console.cli import cli

    checked = []

    class Recording(drivers.LocalDriver):
        async def check(self, **kwargs):
            checked.append(self.box.name)
            return await super().check(**kwargs)

    monkeypatch.setitem(drivers.DRIVERS, "local", Recording)
    result = CliRunner().invoke(cli, ["boxes", "check", "local", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert checked == ["local"] and (report["box"], report["address"]) == ("local", "this machine")
    assert report["cpus"] > 0 and report["python"]
    refused = CliRunner().invoke(cli, ["boxes", "bootstrap", "local"]).exception  # main() makes it exit 2
    assert isinstance(refused, UserError) and "this machine" in str(refused) and "\n" not in str(refused)


def test_a_box_provider_writes_a_rental_and_nothing_else_changes(home):
    """Another rental provider's module rents a machine and registers an SSH box with its `Rental`: the driver,
    the price of its runs, its running cost and the box listing follow from that record alone."""
    from click.testing import CliRunner

    from remotes.boxes import Rental, get_box, put_box, ssh_box
    from remotes.cost import price_of
    from remotes.drivers import SSHDriver, driver_class
    from slayer_console.cli import cli

    started = time.time() - 1800
    put_box(home, ssh_box("acme-1", "root@203.0.113.9:2222",  # what remotes/acme.py's rent would write
                          rental=Rental(provider="acme", instance_id="i-42", gpu="8x H100", dph_total=16.0,
                                        started_s=started)))
    box = get_box(home, "acme-1")
    assert driver_class(box) is SSHDriver
    assert (price_of(home, "acme-1").per_hour, price_of(home, "acme-1").source) == (16.0, "acme")
    assert box.running_cost(now=started + 3600) == 16.0
    assert "$16.000/h" in CliRunner().invoke(cli, ["boxes"]).output


# The "done when" of the architecture step, kept true by grep: each check reads the code as text or syntax.

CODE = [p for d in ("engine", "store", "remotes", "slayer_console", "bench") for p in sorted((ROOT / d).rglob("*.py"))]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_no_transport_branch_outside_the_drivers():
    import re

    branch = re.compile(r'[!=]=\s*"(local|ssh|vast)"|"(local|ssh|vast)"\s*[!=]=')
    allowed = {"remotes/drivers.py", "remotes/vast.py"}  # the drivers; vast's own rental lifecycle
    found = [f"{_rel(p)}:{i}: {line.strip()}" for p in CODE if _rel(p) not in allowed
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if branch.search(line)]
    assert not found, "decide by the box's driver (remotes/drivers.py), not by its name or kind:\n" + "\n".join(found)


def _literal_groups(tree):
    """(line, words, whole table?) of each literal collection of strings: tuples, lists, sets and dict keys."""
    import ast

    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            yield node.lineno, [e.value for e in node.elts if isinstance(e, ast.Constant)], False
        elif isinstance(node, ast.Dict):
            yield node.lineno, [k.value for k in node.keys if isinstance(k, ast.Constant)], True


def test_each_vocabulary_is_defined_once():
    """Run statuses, verdicts, axes, subject kinds and decisions are listed only in engine/vocab.py; the default
    tolerance is written only there; verdict and decision marks are drawn from it."""
    import ast
    import re

    words = {"run statuses": {*vocab.RUN_STATUSES, vocab.LOST}, "verdicts": set(vocab.VERDICTS),
             "axes": set(vocab.AXIS_NAMES), "subject kinds": set(vocab.SUBJECT_KINDS),
             "decisions": set(vocab.DECISIONS)}
    # ≠ and ? also stand for "differs" and a question in plain text
    marks = ({v.mark for v in vocab.VERDICTS.values() if v.flag} | set(vocab.DECISIONS.values())) - {"≠", "?"}
    tolerance = re.compile(r"default=0\.5\b|toleran\w*\s*(:[^=\n]+)?=\s*0\.5\b")
    found = []
    for path in CODE:
        rel = _rel(path)
        if rel == "engine/vocab.py":
            continue
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        # engine/data's replay skills share names with axes: their own vocabulary, mapped to axes in ANCHORS
        for line, items, table in ([] if rel.startswith("engine/data/") else _literal_groups(tree)):
            for name, vocabulary in words.items():
                hits = [w for w in items if isinstance(w, str) and w in vocabulary]
                # a table keyed by the words (a colour or rank per status …), or a list of two or more of them
                if (table and len(hits) >= 3 and len(hits) == len(items)) or (not table and len(hits) >= 2):
                    found.append(f"{rel}:{line}: {name} {hits}")
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr)}
        found += [f"{rel}:{n.lineno}: a mark written out {n.value[:30]!r}" for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
                  and any(m in n.value for m in marks)]
        found += [f"{rel}:{i}: the default tolerance written out" for i, line in enumerate(text.splitlines(), 1)
                  if tolerance.search(line)]
    assert not found, "read these from engine/vocab.py:\n" + "\n".join(found)


def test_subject_recipes_are_built_only_by_recipe():
    """No recipe dict is built by hand: engine.subjects.Recipe makes them (tests/test_subjects.py pins the old
    dicts on purpose), and nothing sets a recipe after construction."""
    import ast

    found = []
    for path in CODE + sorted((ROOT / "tests").glob("*.py")):
        rel = _rel(path)
        if rel in ("engine/subjects.py", "tests/test_subjects.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            keys = {k.value for k in getattr(node, "keys", []) if isinstance(k, ast.Constant)}
            if isinstance(node, ast.Dict) and keys & {"format", "merge"} and keys & {"model", "adapter"} \
                    and "kind" not in keys:  # a job spec names its kind; a recipe does not
                found.append(f"{rel}:{node.lineno}: a recipe dict {sorted(keys)}")
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and any(
                    isinstance(target, ast.Attribute) and "recipe" in target.attr
                    for target in getattr(node, "targets", [getattr(node, "target", None)])):
                found.append(f"{rel}:{node.lineno}: sets a recipe after construction")
    assert not found, "build recipes with engine.subjects.Recipe:\n" + "\n".join(found)
