"""Launching a job from the console: validate the spec text, keep a copy under $SLAYER_HOME/jobs/, start it
through its box's driver (remotes.drivers), registered in the store before it runs."""

from __future__ import annotations

import os
import tomllib
from dataclasses import replace
from pathlib import Path

from engine.errors import SpecError
from slayer_console.planning import check_fits, check_gate_boxes, gate_boxes


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


def check_policy(settings, spec, experiment: str, source: str) -> list[dict]:
    """The experiment's policy (engine.policy) against the job, before it launches anywhere: a violation is one
    SpecError line naming the rule and the field (exit 2); returns each rule the experiment overrides that the
    job breaks ({rule, field, reason}), to say aloud and to record on the run (`record_overrides`)."""
    from engine.policy import check

    policy = settings.experiment_config(experiment).policy
    config = spec.config.model_dump(mode="json")
    broken = check(spec.kind.name, config, policy)
    if broken:
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        raise SpecError(broken[0].line(source) + more + f"; to proceed anyway, record why in "
                        f"{settings.home / 'experiments' / (experiment + '.toml')} as [policy.override] "
                        f'{broken[0].rule} = "reason"')
    overridden = check(spec.kind.name, config, replace(policy, override={}))
    return [{"rule": v.rule, "field": v.field, "reason": policy.override[v.rule]} for v in overridden]


def override_line(override: dict) -> str:
    return f"policy override: {override['rule']} (field {override['field']!r}): {override['reason']}"


def record_overrides(store, run_id: str, overrides: list[dict]) -> None:
    """The overrides the run launched under, on its row in the store: `slayer runs show` lists them."""
    from store.ingest import register_run

    if overrides:
        register_run(store, run_id, policy_overrides=overrides)


async def launch(settings, store, request, confirm):
    """Start the request on its box (asking about an unknown host key); returns (driver, run handle, whether the
    console must follow it: a remote run, or one whose checkpoints its follower gates by fan-out)."""
    import asyncio

    from remotes.drivers import driver_for

    path, spec = await asyncio.to_thread(save_spec, settings.home, request.spec_text, request.source)
    experiment = request.experiment or spec.experiment or "default"
    driver = await asyncio.to_thread(driver_for, settings.home, store, request.box)
    driver.admit(spec)
    overrides = await asyncio.to_thread(check_policy, settings, spec, experiment, request.source)
    await asyncio.to_thread(check_gate_boxes, settings.home, request.source, spec)
    await asyncio.to_thread(check_fits, settings.home, request.source, spec, request.box)
    handle = await driver.launch(spec, path, experiment=experiment, confirm=confirm)
    await asyncio.to_thread(record_overrides, store, handle.run_id, overrides)
    return driver, handle, not driver.local or bool(gate_boxes(spec))
