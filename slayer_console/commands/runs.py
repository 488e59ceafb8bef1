"""`slayer run`, `slayer runs …`, `slayer ingest`: launch, follow with a progress bar, ingest live."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from engine.errors import NotFound, SpecError, UserError, WorkFailed
from engine.vocab import LOST, TERMINAL
from slayer_console.commands.common import FORMAT, print_json, print_table, settings


def _fmt_ms(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else ""


def follow_local(store, run_id: str, run_dir: Path, pid: int | None, quiet: bool = False, poll_s: float = 0.2) -> str:
    """Ingest RUN_DIR until the job ends, drawing a rich progress bar from its progress events."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from remotes.local import pid_alive
    from store.ingest import ingest_run_dir
    from store.queries import get_run

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=quiet, transient=False, console=None) as bar:
        task = bar.add_task(run_id, total=None)
        while True:
            alive = pid is not None and pid_alive(pid)
            if (run_dir / "events.jsonl").exists():
                ingest_run_dir(store, run_dir)
            view = get_run(store, run_id)
            if view.progress_total:
                bar.update(task, completed=view.progress_done or 0, total=view.progress_total,
                           description=f"{run_id} {view.status}")
            if view.status in TERMINAL:
                return view.status
            if not alive and pid is not None:
                # The process is gone without a final status (killed -9, or it died before its first
                # event): one last pass, then say so.
                if (run_dir / "events.jsonl").exists():
                    ingest_run_dir(store, run_dir)
                status = get_run(store, run_id).status
                return status if status in TERMINAL else LOST
            time.sleep(poll_s)


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
    from slayer_console.commands.plan import check_fits
    from slayer_console.launching import check_policy

    spec = load_spec(spec_path)
    cfg = settings()
    if not force:
        check_fits(cfg.home, spec_path, spec, box)
    experiment = experiment or spec.experiment or "default"
    for line in check_policy(cfg, spec, experiment, spec_path):
        click.echo(line, err=True)
    store = cfg.store()
    if box != "local":
        from remotes.launch import launch_on_box

        sys.exit(launch_on_box(cfg, box, spec_path, spec, experiment, detach=detach, quiet=quiet))
    from remotes.cost import run_price
    from remotes.local import cancel_local, launch_local
    from store.ingest import register_run

    launched = launch_local(spec_path, spec, cfg.runs_dir)
    register_run(store, launched.run_id, kind=spec.kind.name, name=spec.name, experiment=experiment,
                 run_dir=str(launched.run_dir), box="local", pid=launched.pid, **run_price(cfg.home, "local"))
    if detach:
        click.echo(launched.run_id)
        return
    click.echo(f"run {launched.run_id} ({spec.kind.name}) in {launched.run_dir}", err=True)
    try:
        status = follow_local(store, launched.run_id, launched.run_dir, launched.pid, quiet=quiet)
    except KeyboardInterrupt:
        click.echo("cancelling…", err=True)
        cancel_local(launched.run_dir)
        status = follow_local(store, launched.run_id, launched.run_dir, launched.pid, quiet=True)
    _finish(store, launched.run_id, status)


def last_log_line(run_dir: Path) -> str:
    """The last non-empty line of a run's log.txt: why a job that wrote no final status died."""
    try:
        lines = (Path(run_dir) / "log.txt").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _finish(store, run_id: str, status: str) -> None:
    from store.queries import get_run

    view = get_run(store, run_id)
    error = view.error or (last_log_line(Path(view.run_dir)) if status == LOST else "")
    click.echo(f"{run_id} {status}" + (f": {error}" if error else ""))
    if status != "succeeded":
        if _bad_input(Path(view.run_dir)):
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
    """One run: status, error, progress, where it lives."""
    from store.queries import get_run

    v = get_run(settings().store(), run_id)
    if fmt == "json":
        print_json(v.as_dict())
        return
    for k, val in v.as_dict().items():
        click.echo(f"{k:15} {_fmt_ms(val) if k.endswith('_ms') else ('' if val is None else val)}")


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

    store = settings().store()
    view = get_run(store, run_id)
    if view.box != "local":
        from remotes.launch import cancel_on_box

        cancel_on_box(settings(), view)
    else:
        from remotes.local import cancel_local, read_pid

        if not cancel_local(Path(view.run_dir)):
            raise SpecError(f"{view.id} is not running (status {view.status})")
        status = follow_local(store, view.id, Path(view.run_dir), read_pid(Path(view.run_dir)), quiet=True)
        click.echo(f"{view.id} {status}")


@runs.command("attach")
@click.argument("run_id")
@click.option("--quiet", is_flag=True)
def attach_cmd(run_id: str, quiet: bool) -> None:
    """Follow a run again (after a disconnect or a console restart) until it ends."""
    from store.queries import get_run

    store = settings().store()
    view = get_run(store, run_id)
    if view.box != "local":
        from remotes.launch import attach_on_box

        sys.exit(attach_on_box(settings(), view, quiet=quiet))
    from remotes.local import read_pid

    status = follow_local(store, view.id, Path(view.run_dir), read_pid(Path(view.run_dir)), quiet=quiet)
    _finish(store, view.id, status)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--experiment", default=None)
def ingest(run_dir: str, experiment: str | None) -> None:
    """Ingest a run directory copied by hand (idempotent)."""
    from store.ingest import ingest_run_dir

    stats = ingest_run_dir(settings().store(), run_dir, experiment=experiment)
    click.echo(f"{run_dir}: {stats.events} new events (seq {stats.seq}, status {stats.status})")
