"""`slayer run`, `slayer runs …`, `slayer ingest`: launch, follow with a progress bar, ingest live."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import click

from engine.errors import NotFound, UserError, WorkFailed
from engine.vocab import LOST, TERMINAL
from slayer_console.commands.common import FORMAT, print_json, print_table, settings


def _fmt_ms(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else ""


@click.command()
@click.argument("spec_path", metavar="JOB.toml", type=click.Path(dir_okay=False))
@click.option("--box", default="local", show_default=True, help="where to run (see `slayer boxes`)")
@click.option("--detach", is_flag=True, help="print the run id and return; the job keeps running")
@click.option("--experiment", default=None, help="experiment to file the run under (default: the spec's, else 'default')")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--force", is_flag=True, help="launch even when `slayer plan` says the job does not fit the box")
def run(spec_path: str, box: str, detach: bool, experiment: str | None, quiet: bool, force: bool) -> None:
    """Launch a job, follow it with a progress bar and ingest it live."""
    from engine.jobs import load_spec
    from remotes.drivers import driver_for
    from slayer_console.launching import check_policy, override_line, record_overrides
    from slayer_console.planning import check_fits, check_gate_boxes

    spec = load_spec(spec_path)
    cfg = settings()
    driver = driver_for(cfg.home, cfg.store(), box)
    driver.admit(spec)  # before planning: a job the box cannot run at all is refused in one line
    check_gate_boxes(cfg.home, spec_path, spec)  # before planning: the plan reads each gate box too
    if not force:
        check_fits(cfg.home, spec_path, spec, box, note=lambda line: click.echo(line, err=True))
    experiment = experiment or spec.experiment or "default"
    overrides = check_policy(cfg, spec, experiment, spec_path)
    for override in overrides:
        click.echo(override_line(override), err=True)
    handle = asyncio.run(driver.launch(spec, spec_path, experiment=experiment))
    record_overrides(cfg.store(), handle.run_id, overrides)
    if detach:
        click.echo(handle.run_id)
        return
    click.echo(f"run {handle.run_id} ({spec.kind.name}) on box {box} in {handle.run_dir}", err=True)
    _follow_to_end(cfg, driver, handle.run_id, quiet)


def _follow_to_end(cfg, driver, run_id: str, quiet: bool) -> None:
    """Follow the run until it ends (Ctrl-C: a local job is cancelled, a remote one keeps running), bring its
    results home, print `RUN STATUS[: error]`; WorkFailed unless it succeeded."""
    from remotes.boxes import BoxError
    from slayer_console.progress import follow_with_bar

    try:
        status = follow_with_bar(driver, run_id, quiet)
    except KeyboardInterrupt:
        if not driver.interrupt_cancels:
            click.echo(f"detached: {run_id} keeps running; `slayer runs attach {run_id}` follows it again, "
                       f"`slayer runs cancel {run_id}` stops it", err=True)
            sys.exit(130)
        click.echo("cancelling…", err=True)
        status = asyncio.run(driver.cancel(run_id))
    try:
        report = asyncio.run(driver.sync(run_id))
    except BoxError as e:
        click.echo(f"warning: results not pulled: {e}", err=True)
    else:
        if report is not None:
            click.echo(f"results in {report.local_dir}" + (f" ({len(report.held_back)} checkpoint/model files "
                       f"left on the box)" if report.held_back else ""), err=True)
    _finish(cfg.store(), run_id, status, cfg.runs_dir / run_id)


def last_log_line(run_dir: Path) -> str:
    """The last non-empty line of a run's log.txt: why a job that wrote no final status died."""
    try:
        lines = (Path(run_dir) / "log.txt").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _finish(store, run_id: str, status: str, local_dir: Path) -> None:
    """`local_dir`: the run directory here (a remote run's synced copy), whose log says why a run was lost."""
    from store.queries import get_run

    view = get_run(store, run_id)
    error = view.error or (last_log_line(local_dir) if status == LOST else "")
    click.echo(f"{run_id} {status}" + (f": {error}" if error else ""))
    if status != "succeeded":
        if _bad_input(local_dir):
            raise UserError(f"run {run_id} {status} on bad input")
        raise WorkFailed(f"run {run_id} {status}")


def _bad_input(run_dir: Path) -> bool:
    """Did the job fail on bad input (engine.runner marks its final status event)?"""
    import json

    try:
        lines = (run_dir / "events.jsonl").read_bytes().splitlines()
        return bool(lines) and bool(json.loads(lines[-1]).get("bad_input"))
    except (OSError, ValueError):
        return False


@click.group(invoke_without_command=True)
@click.option("--experiment", default=None)
@click.option("--limit", default=50, show_default=True, help="newest N runs (0: all)")
@FORMAT
@click.pass_context
def runs(ctx: click.Context, experiment: str | None, limit: int, fmt: str) -> None:
    """List runs (newest first); subcommands show, logs, cancel, attach."""
    if ctx.invoked_subcommand is not None:
        return
    from store.queries import list_runs

    views = list_runs(settings().store(), experiment, limit or None)
    if fmt == "json":
        print_json([v.as_dict() for v in views])
        return
    rows = []
    for v in views:
        progress = f"{v.progress_done:g}/{v.progress_total:g} {v.progress_unit or ''}" if v.progress_total else ""
        rows.append([v.id, v.experiment, v.kind, v.status, progress, v.box, _fmt_ms(v.created_ms)])
    print_table(None, ["run", "experiment", "kind", "status", "progress", "box", "created"], rows)


@runs.command("show")
@click.argument("run_id")
@FORMAT
def show_cmd(run_id: str, fmt: str) -> None:
    """One run: status, error, progress, where it lives, the policy overrides it launched under; a training run's
    last loss and drift from the base."""
    from slayer_console.launching import override_line
    from store.queries import get_run, latest_metrics

    store = settings().store()
    v = get_run(store, run_id)
    latest = latest_metrics(store, [v.id]).get(v.id, {})
    if fmt == "json":
        print_json({**v.as_dict(), "latest": {k: {"step": s, "value": x} for k, (s, x) in latest.items()}})
        return
    for k, val in v.as_dict().items():
        if k != "policy_overrides":
            click.echo(f"{k:15} {_fmt_ms(val) if k.endswith('_ms') else ('' if val is None else val)}")
    for override in v.policy_overrides or []:
        click.echo(override_line(override))
    for k, (step, value) in latest.items():
        click.echo(f"{k:15} {value:.4g} (step {step})")


@runs.command("logs")
@click.argument("run_id")
@click.option("-f", "--follow", is_flag=True, help="keep printing as the log grows, until the run ends")
def logs_cmd(run_id: str, follow: bool) -> None:
    """Print a local run's log.txt."""
    from store.ingest import ingest_run_dir
    from store.queries import get_run

    store = settings().store()
    view = get_run(store, run_id)
    log = Path(view.run_dir) / "log.txt"
    if not log.exists():
        raise NotFound(f"{log}: no log (remote runs: `slayer runs attach {view.id}` syncs it)")
    with open(log, "rb") as f:
        while True:
            chunk = f.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            if not follow:
                return
            ingest_run_dir(store, view.run_dir)
            if get_run(store, view.id).status in TERMINAL:
                sys.stdout.write(f.read().decode(errors="replace"))
                return
            time.sleep(0.3)


@runs.command("cancel")
@click.argument("run_id")
def cancel_cmd(run_id: str) -> None:
    """Ask a running job to stop; it records `cancelled`."""
    from store.queries import get_run

    from remotes.drivers import driver_for

    cfg = settings()
    view = get_run(cfg.store(), run_id)
    status = asyncio.run(driver_for(cfg.home, cfg.store(), view.box).cancel(view.id))
    click.echo(f"{view.id} {status}")


@runs.command("attach")
@click.argument("run_id")
@click.option("--quiet", is_flag=True)
def attach_cmd(run_id: str, quiet: bool) -> None:
    """Follow a run again (after a disconnect or a console restart) until it ends."""
    from store.queries import get_run

    from remotes.drivers import driver_for

    cfg = settings()
    view = get_run(cfg.store(), run_id)
    _follow_to_end(cfg, driver_for(cfg.home, cfg.store(), view.box), view.id, quiet)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--experiment", default=None)
def ingest(run_dir: str, experiment: str | None) -> None:
    """Ingest a run directory copied by hand (idempotent)."""
    from store.ingest import ingest_run_dir

    stats = ingest_run_dir(settings().store(), run_dir, experiment=experiment)
    click.echo(f"{run_dir}: {stats.events} new events (seq {stats.seq}, status {stats.status})")
