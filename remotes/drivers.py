"""Box drivers: one object per transport that launches a job, follows it into the store, cancels it, says
whether it is alive, where its log is, and brings its results home. The console and the CLI call a driver
and never ask which transport a box uses; `driver_for` picks it by the box's kind.

A new transport (Slurm, Kubernetes …) is a class here with these methods plus its entry in DRIVERS.
A rental provider (like vast.ai) is an SSH box whose lifecycle is rented: it uses SSHDriver as is.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.jobs import JobSpec
from engine.vocab import LOST, TERMINAL
from remotes.boxes import Box, get_box
from remotes.ssh import HostKeyConfirm

OnProgress = Callable[[object], None]  # called with the run's store.queries.RunView after each ingest pass


@dataclass
class RunHandle:
    """A launched run, registered in the store before its job started."""

    run_id: str
    box: str
    run_dir: str
    pid: int | None


class LocalDriver:
    """This machine: a detached subprocess in $SLAYER_HOME/runs/RUN, ingested from disk. The blocking work
    (files, the store) runs in a thread, so the console's event loop never waits on it."""

    local = True  # the console's poller ingests these runs from disk; it follows the others over SSH
    interrupt_cancels = True  # Ctrl-C in `slayer run` stops a local job (a remote one keeps running)
    bootstraps = False  # it runs the engine this console runs

    def __init__(self, home: Path, store, box: Box, runs_dir: Path | None = None):
        self.home, self.store, self.box = Path(home), store, box
        self.runs_dir = runs_dir or self.home / "runs"

    @staticmethod
    def address(box: Box) -> str:
        return "this machine"

    def admit(self, spec: JobSpec) -> None:
        """Before planning: a job this install cannot run (no `[ml]` extra) is refused in one line."""
        from engine.extras import require_for_job

        require_for_job(spec)

    async def launch(self, spec: JobSpec, spec_path: str | Path, *, experiment: str,
                     confirm: HostKeyConfirm | None = None) -> RunHandle:
        return await asyncio.to_thread(self._launch, spec, spec_path, experiment)

    def _launch(self, spec: JobSpec, spec_path: str | Path, experiment: str) -> RunHandle:
        from remotes.cost import box_price
        from remotes.local import launch_local
        from store.ingest import register_run

        launched = launch_local(spec_path, spec, self.runs_dir)
        register_run(self.store, launched.run_id, kind=spec.kind.name, name=spec.name, experiment=experiment,
                     run_dir=str(launched.run_dir), box=self.box.name, pid=launched.pid,
                     **box_price(self.box).fields())
        return RunHandle(launched.run_id, self.box.name, str(launched.run_dir), launched.pid)

    async def follow(self, run_id: str, *, on_progress: OnProgress | None = None,
                     on_state: Callable[[str], None] | None = None, poll_s: float = 0.2,
                     confirm: HostKeyConfirm | None = None) -> str:
        """Ingest the run directory until the job ends; its final status, or "lost" if the process is gone
        without one (killed -9, or it died before its first event). A run gating by fan-out has its
        checkpoints gated on other boxes meanwhile (remotes.gatefan)."""
        from remotes.gatefan import gate_alongside

        return await gate_alongside(self.home, self.store, run_id,
                                    asyncio.to_thread(self._follow, run_id, on_progress, poll_s), on_state, poll_s)

    def _follow(self, run_id: str, on_progress: OnProgress | None, poll_s: float) -> str:
        from remotes.local import pid_alive, read_pid
        from store.ingest import ingest_run_dir
        from store.queries import get_run

        view = get_run(self.store, run_id)
        run_dir, pid = Path(view.run_dir), view.pid or read_pid(Path(view.run_dir))
        while True:
            alive = pid is not None and pid_alive(pid)
            if (run_dir / "events.jsonl").exists():
                ingest_run_dir(self.store, run_dir)
            view = get_run(self.store, run_id)
            if on_progress:
                on_progress(view)
            if view.status in TERMINAL:
                return view.status
            if not alive and pid is not None:
                if (run_dir / "events.jsonl").exists():  # one last pass, then say so
                    ingest_run_dir(self.store, run_dir)
                status = get_run(self.store, run_id).status
                return status if status in TERMINAL else LOST
            time.sleep(poll_s)

    async def cancel(self, run_id: str) -> str:
        """Signal the job's process group (it records `cancelled`); its final status. SpecError if not running."""
        from engine.errors import SpecError
        from remotes.local import cancel_local
        from store.queries import get_run

        view = await asyncio.to_thread(get_run, self.store, run_id)
        if view.status in TERMINAL or not await asyncio.to_thread(cancel_local, Path(view.run_dir)):
            raise SpecError(f"{view.id} is not running (status {view.status})")
        return await asyncio.to_thread(self._follow, run_id, None, 0.2)

    def alive(self, run) -> bool:
        """Whether the job's process still runs (a run row from store.queries)."""
        from remotes.local import pid_alive, read_pid

        pid = read_pid(Path(run.run_dir)) if run.run_dir else None
        pid = pid or run.pid
        return pid is None or pid_alive(pid)

    def log_path(self, run) -> Path | None:
        return Path(run.run_dir) / "log.txt" if run.run_dir else None

    def machine(self):
        """This machine's memory and GPUs, for the planner (engine.plan)."""
        from engine.plan import this_machine

        return this_machine(str(self.home))

    async def check(self, *, confirm: HostKeyConfirm | None = None, accept_fingerprint: str | None = None):
        """The box probe (remotes.check.BoxReport) run here, without SSH."""
        from remotes.check import check_here

        return await check_here(self.box, self.home)

    async def bootstrap(self, **options):
        from engine.errors import SpecError

        raise SpecError(f"box {self.box.name} is this machine: it already runs this console's engine")

    async def sync(self, run_id: str):
        """Results are already here."""
        return None

    async def read_file(self, run, rel: str) -> bytes | None:
        """A file of the run's directory (None when it is not there yet)."""
        path = Path(run.run_dir) / rel
        return path.read_bytes() if path.is_file() else None

    async def fetch(self, run, folder: str, names: tuple[str, ...]) -> Path:
        """A folder of the run (an absolute path on its box) as a folder here: it is here already."""
        return Path(folder)


class SSHDriver:
    """An SSH box (vast.ai boxes too): detached under setsid with a pid file, followed over SFTP."""

    local = False
    interrupt_cancels = False
    bootstraps = True

    def __init__(self, home: Path, store, box: Box):
        self.home, self.store, self.box = Path(home), store, box

    @staticmethod
    def address(box: Box) -> str:
        port = f":{box.port}" if box.port != 22 else ""
        return f"{box.user + '@' if box.user else ''}{box.host}{port}"

    def admit(self, spec: JobSpec) -> None:
        """Whether the box can run the job is found at launch (its python, its extras)."""

    async def launch(self, spec: JobSpec, spec_path: str | Path, *, experiment: str,
                     confirm: HostKeyConfirm | None = None) -> RunHandle:
        from remotes.launch import launch_remote

        spec.experiment = experiment
        run = await launch_remote(self.home, self.store, self.box.name, spec, confirm=confirm)
        return RunHandle(run.run_id, run.box, run.run_dir, run.pid)

    async def follow(self, run_id: str, *, on_progress: OnProgress | None = None,
                     on_state: Callable[[str], None] | None = None, poll_s: float = 0.2,
                     confirm: HostKeyConfirm | None = None) -> str:
        from remotes.follow import follow_run
        from remotes.gatefan import gate_alongside
        from store.queries import get_run

        def on_ingest(_stats) -> None:
            if on_progress:
                on_progress(get_run(self.store, run_id))

        return await gate_alongside(self.home, self.store, run_id,
                                    follow_run(self.home, self.store, run_id, on_ingest=on_ingest, on_state=on_state,
                                               poll_s=poll_s, confirm=confirm), on_state, poll_s)

    async def cancel(self, run_id: str) -> str:
        from remotes.launch import cancel_remote

        return await cancel_remote(self.home, self.store, run_id)

    def alive(self, run) -> bool | None:
        """Unknown from here without a connection: follow() finds out."""
        return None

    def log_path(self, run) -> Path | None:
        """The log stays on the box (`slayer runs attach` syncs it)."""
        return None

    def machine(self):
        """The box as its last `slayer boxes check` recorded it, for the planner (engine.plan)."""
        from engine.plan import machine_from_report
        from remotes.check import load_report

        return machine_from_report(load_report(self.home, self.box.name))

    async def check(self, *, confirm: HostKeyConfirm | None = None, accept_fingerprint: str | None = None):
        """Connect (pinning the host key on first contact), probe the box, keep the report for the planner."""
        from remotes.check import check_box

        return await check_box(self.box, self.home, confirm=confirm, accept_fingerprint=accept_fingerprint)

    async def bootstrap(self, *, confirm: HostKeyConfirm | None = None, **options):
        """Make the box run the engine (remotes.bootstrap); `options`: wheel, base_python, extras."""
        from remotes.bootstrap import bootstrap_box

        return await bootstrap_box(self.home, self.box.name, confirm=confirm, **options)

    async def sync(self, run_id: str):
        from remotes.sync import sync_run

        return await sync_run(self.home, self.store, run_id)

    async def read_file(self, run, rel: str) -> bytes | None:
        """A file of the run's directory, over SFTP (None when it is not there yet)."""
        import asyncssh

        from remotes.ssh import connect_box

        async with connect_box(self.box, self.home) as conn, conn.start_sftp_client() as sftp:
            try:
                async with sftp.open(f"{run.run_dir}/{rel}", "rb") as f:
                    return await f.read()
            except asyncssh.SFTPNoSuchFile:
                return None

    async def fetch(self, run, folder: str, names: tuple[str, ...]) -> Path:
        """These files of a folder of the run (an absolute path on the box), pulled home (remotes.sync)."""
        from remotes.sync import sync_run

        rel = folder.removeprefix(run.run_dir.rstrip("/") + "/")
        await sync_run(self.home, self.store, run.id, paths=tuple(f"{rel}/{name}" for name in names))
        return self.home / "runs" / run.id / rel


# "vast": vast.ai rentals as boxes.toml recorded them before rentals became SSH boxes with a Rental record
DRIVERS = {"local": LocalDriver, "ssh": SSHDriver, "vast": SSHDriver}


def driver_class(box: Box) -> type:
    """What a box's driver can do (class attributes: local, interrupt_cancels, bootstraps; address)."""
    return DRIVERS[box.kind]


def driver_for(home: Path, store, box_name: str | Box):
    """The driver of a box, or of box `box_name` (BoxError naming the box when boxes.toml does not know it)."""
    box = box_name if isinstance(box_name, Box) else get_box(home, box_name)
    return DRIVERS[box.kind](home, store, box)
