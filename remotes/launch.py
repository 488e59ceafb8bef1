"""Start a job on an ssh box (remotes.drivers.SSHDriver), detached: upload the spec, run `python -m engine run` in its own session
(setsid + nohup, a pid file) so closing the SSH channel never touches it; cancel its process group."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from engine.jobs import JobSpec
from remotes.bootstrap import check_engine
from remotes.boxes import BoxError, get_box
from remotes.cost import box_price
from remotes.follow import ALIVE_SH, follow_run, run_row
from remotes.local import new_run_id
from remotes.ssh import HostKeyConfirm, connect_box, python_command, remote_workdir, run_command
from store.ingest import register_run

# One simple command in the background (no subshell), so $! is the job's pid and session id and no process
# holds the SSH channel's stdout open.
LAUNCH_SH = ("cd {run_dir} || exit 1; setsid nohup {python} -m engine run job.toml --run-dir {run_dir} "
             "--run-id {run_id} --pid-file {run_dir}/pid >>{run_dir}/launch.log 2>&1 </dev/null & echo $!")

# TERM the session, wait for it to end, KILL what is left (exit 4), or say it was not running (exit 3).
CANCEL_SH = (ALIVE_SH + "alive \"$pid\" || exit 3; kill -TERM -\"$pid\" 2>/dev/null; "
             "i=0; while [ $i -lt {ticks} ]; do alive \"$pid\" || exit 0; sleep 0.2; i=$((i+1)); done; "
             "kill -KILL -\"$pid\" 2>/dev/null; exit 4")


@dataclass
class RemoteRun:
    run_id: str
    box: str
    run_dir: str
    pid: int


async def launch_remote(home, store, box_name: str, spec: JobSpec, *, run_id: str | None = None,
                        confirm: HostKeyConfirm | None = None) -> RemoteRun:
    """Upload `spec` (resolved) and start it detached on the box; the run is registered in the store
    before it starts, so nothing it writes can be missed."""
    box = get_box(home, box_name)
    run_id = run_id or new_run_id(spec.kind.name)
    async with connect_box(box, home, confirm=confirm) as conn:
        await check_engine(conn, box)
        run_dir = f"{await remote_workdir(conn, box)}/runs/{run_id}"
        async with conn.start_sftp_client() as sftp:
            await sftp.makedirs(run_dir, exist_ok=True)
            async with sftp.open(f"{run_dir}/job.toml", "w") as f:
                await f.write(spec.to_toml())
        register_run(store, run_id, kind=spec.kind.name, name=spec.name, experiment=spec.experiment or "default",
                     run_dir=run_dir, box=box.name, **box_price(box).fields())
        out = await run_command(conn, box, LAUNCH_SH.format(run_dir=shlex.quote(run_dir), run_id=shlex.quote(run_id),
                                                            python=python_command(box)), what="launch")
    pid = int(out.strip().splitlines()[-1])
    register_run(store, run_id, run_dir=run_dir, box=box.name, pid=pid)
    return RemoteRun(run_id, box.name, run_dir, pid)


async def cancel_remote(home, store, run_id: str, *, wait_s: float = 15.0) -> str:
    """TERM the job's whole process group (the job records `cancelled`), KILL stragglers after `wait_s`;
    ingest its last events and return its final status."""
    run = run_row(store, run_id)
    box = get_box(home, run.box)
    async with connect_box(box, home) as conn:
        script = CANCEL_SH.format(run_dir=shlex.quote(run.run_dir), pid=run.pid or 0, ticks=int(wait_s / 0.2))
        result = await conn.run(script, check=False, timeout=wait_s + 30)
    status = await follow_run(home, store, run_id, liveness_s=0)  # the job's last events, `cancelled` among them
    if result.exit_status == 3:
        raise BoxError(f"run {run_id} is not running on box {box.name} (status {status})")
    return status
