"""Launching a job from the console: validate the spec text, keep a copy under $SLAYER_HOME/jobs/, start it
locally (remotes.local) or on an SSH box (remotes.launch), registered in the store before it runs."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from engine.errors import SpecError


def save_spec(home: Path, text: str, source: str):
    """(path of the saved spec, JobSpec); a bad spec is one SpecError line naming `source`."""
    from engine.jobs import parse_spec
    from remotes.local import new_run_id

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{source}: malformed TOML: {e}") from None
    spec = parse_spec(data, source)
    path = Path(home) / "jobs" / f"{new_run_id(spec.kind.name)}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path, spec


def launch_here(settings, store, request) -> str:
    """Start the request on this machine; returns the run id."""
    from remotes.cost import run_price
    from remotes.local import launch_local
    from store.ingest import register_run

    path, spec = save_spec(settings.home, request.spec_text, request.source)
    experiment = request.experiment or spec.experiment or "default"
    launched = launch_local(path, spec, settings.runs_dir)
    register_run(store, launched.run_id, kind=spec.kind.name, name=spec.name, experiment=experiment,
                 run_dir=str(launched.run_dir), box="local", pid=launched.pid, **run_price(settings.home, "local"))
    return launched.run_id


async def launch_there(settings, store, request, confirm) -> str:
    """Start the request detached on an SSH box (asking about an unknown host key); returns the run id."""
    import asyncio

    from remotes.launch import launch_remote

    _, spec = await asyncio.to_thread(save_spec, settings.home, request.spec_text, request.source)
    spec.experiment = request.experiment or spec.experiment
    run = await launch_remote(settings.home, store, request.box, spec, confirm=confirm)
    return run.run_id
