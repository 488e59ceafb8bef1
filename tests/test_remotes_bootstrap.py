"""Bootstrap by wheel: a box with no engine gets a venv and this project's wheel, then runs jobs from it;
a second bootstrap of unchanged sources installs nothing."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys

import pytest

from engine.jobs import parse_spec
from conftest import ROOT
from remotes.bootstrap import bootstrap_box, source_files
from remotes.boxes import get_box
from remotes.follow import follow_run
from remotes.launch import launch_remote
from sshd import register, sshd, sshd_factory  # noqa: F401  (fixtures)
from store import Store


@pytest.mark.slow
def test_wheel_bootstrap_installs_once_and_the_box_runs_jobs(sshd, home, tmp_path):
    register(home, sshd.box("bare", workdir=str(tmp_path / "wd")), sshd)
    source = tmp_path / "src"  # a snapshot: the digest must not move while the test runs
    for path in source_files(ROOT):
        (source / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, source / path.relative_to(ROOT))

    first = asyncio.run(bootstrap_box(home, "bare", base_python=sys.executable, source=source))
    assert first.mode == "wheel installed" and first.engine and first.torch
    python = get_box(home, "bare").python
    assert python == f"{tmp_path / 'wd'}/venv/bin/python"
    where = subprocess.run([python, "-c", "import engine; print(engine.__file__)"], capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert f"{tmp_path / 'wd'}/venv/lib" in where.stdout  # the installed wheel, not this checkout

    again = asyncio.run(bootstrap_box(home, "bare", wheel=True, source=source))
    assert again.mode == "wheel up to date" and again.source == first.source

    store = Store.open(str(home / "slayer.db"))

    async def run_there() -> str:
        run = await launch_remote(home, store, "bare", parse_spec({"kind": "debug.sleep", "steps": 2}, "spec"))
        return await follow_run(home, store, run.run_id)

    assert asyncio.run(run_there()) == "succeeded"
