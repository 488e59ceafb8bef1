"""`[gates] mode = "fanout"`: whoever follows a training run gates its checkpoints on other boxes.

The training process gates nothing: it writes each checkpoint's gate job to outputs/gates/ckpt-<step>/fanout.toml
before the checkpoint event (engine.train.gating.FanoutRequests). A box driver's `follow` (`slayer run`,
`slayer runs attach`) runs `gate_alongside`: as each checkpoint reaches the store it reads the request and the
checkpoint's adapter files from the training run (here, or pulled over SFTP) and queues the job on a FanOut over
[gates] boxes. On the box that takes it the adapter is uploaded to WORKDIR/inputs/<run>-ckpt-<step>/ (written
beside, then renamed, so a job never sees half a file) and the job runs there as `<run>-gate-ckpt-<step>`, filed
under the training run's experiment: its results land in the store like any gate run's, under the checkpoint's own
subject id. The base is left out of a job when the experiment already has its results on every gate of the job
(pairwise gates keep it: they need the base's answers in the same job).
"""

from __future__ import annotations

import asyncio
import shlex
import tomllib
from pathlib import Path
from typing import Callable

import asyncssh

from engine.errors import NotFound, SpecError
from engine.jobs import JobSpec, parse_spec
from engine.train.gating import FANOUT_REQUEST
from engine.train.run import ADAPTER_FILES
from remotes.boxes import BoxError, get_box
from remotes.fanout import FanOut
from remotes.ssh import connect_box, remote_workdir, run_command

REQUEST = "outputs/gates/ckpt-{step}/" + FANOUT_REQUEST


def fanout_boxes(job: dict) -> list[str]:
    """The gate boxes of a training spec (a job.toml as a dict) that may gate by fan-out; [] when it cannot."""
    gates = job.get("gates") or {}
    return list(gates.get("boxes") or []) if gates.get("mode", "auto") in ("fanout", "auto") else []


async def check_gate_boxes(home, boxes: list[str], source: str) -> None:
    """Before a launch: every gate box is known, an ssh box, was checked (`slayer plan` plans the gate job on it;
    `[gates] device = "auto"` takes its device from there) and answers with a working engine (one line else)."""
    from remotes.bootstrap import check_engine
    from remotes.check import load_report
    from remotes.drivers import driver_for

    for name in boxes:
        try:
            driver = driver_for(home, None, name)
            if driver.local:
                raise BoxError(f"box {name} is this machine: gate beside training with mode = \"process\" instead")
            load_report(home, name)
            async with connect_box(driver.box, home) as conn:
                await check_engine(conn, driver.box)
        except BoxError as e:
            raise BoxError(f"{source}: [gates] boxes: {e}; fix the box (`slayer boxes check {name}`) or take it "
                           "out of the list") from None


async def upload(home, box_name: str, files: list[Path], name: str) -> str:
    """Copy `files` into WORKDIR/inputs/NAME on the box (a hidden folder beside it, then one rename); its path."""
    box = get_box(home, box_name)
    async with connect_box(box, home) as conn:
        inputs = f"{await remote_workdir(conn, box)}/inputs"
        final, part = f"{inputs}/{name}", f"{inputs}/.{name}.part"
        await run_command(conn, box, f"rm -rf {shlex.quote(part)} && mkdir -p {shlex.quote(part)}", what="upload")
        async with conn.start_sftp_client() as sftp:
            for path in files:
                await sftp.put(str(path), f"{part}/{path.name}")
        await run_command(conn, box, f"rm -rf {shlex.quote(final)} && mv {shlex.quote(part)} {shlex.quote(final)}",
                          what="upload")
    return final


def _without_known_base(store, experiment: str, data: dict) -> dict:
    from engine.gates.backend import SubjectSpec
    from engine.gates.run import resolve_gates
    from engine.gates.scoring import get_scorer
    from store.queries import gated

    gates = resolve_gates(data.get("suite"), data.get("gates", []), data.get("chat_template"))
    if any(get_scorer(g.scorer).pairwise for g in gates):
        return data
    names = {g.name for g in gates}
    subjects = [s for s in data["subjects"] if s.get("kind") != "base"
                or not names <= gated(store, experiment, SubjectSpec.model_validate(s).subject()["id"])]
    return {**data, "subjects": subjects}


class FanoutGating:
    """Watches one training run's checkpoints in the store and gates each on the pool of gate boxes."""

    def __init__(self, home, store, run, boxes: list[str], on_state: Callable[[str], None] | None, poll_s: float):
        from remotes.drivers import driver_for

        self.home, self.store, self.run = home, store, run
        self.driver = driver_for(home, store, run.box)  # of the training run's box: its files
        self.pool = FanOut(home, store, boxes, prepare=self._prepare, on_state=on_state, poll_s=poll_s)
        self.on_state, self.poll_s = on_state, poll_s
        self.seen: set[int] = set()
        self.auto_device: set[str] = set()  # jobs whose device is the gate box's (from its `boxes check`)
        self.sources: dict[str, Path] = {}  # adapter path on the training box → its folder here

    async def _scan(self) -> None:
        from store.queries import get_run, run_checkpoints

        for step, subject in run_checkpoints(self.store, self.run.id):
            if step in self.seen:
                continue
            self.seen.add(step)
            raw = await self.driver.read_file(self.run, REQUEST.format(step=step))
            if raw is None:  # `auto` chose another mode on the training box
                continue
            job_id = f"{self.run.id}-gate-ckpt-{step}"
            try:
                earlier = get_run(self.store, job_id)
            except (NotFound, SpecError):  # none, or only longer ids that start with it
                earlier = None
            if earlier is not None and earlier.id == job_id:
                self._say(f"checkpoint {step}: gated by {job_id} already ({earlier.status})")
                continue
            data = _without_known_base(self.store, self.run.experiment or "default", tomllib.loads(raw.decode()))
            spec = parse_spec(data, f"{self.run.id}:{REQUEST.format(step=step)}")
            spec.experiment = self.run.experiment
            if "device" not in data:
                self.auto_device.add(spec.name)
            for s in spec.config.subjects:
                if s.adapter:
                    self.sources[s.adapter] = await self.driver.fetch(self.run, s.adapter, ADAPTER_FILES)
            self.pool.submit(spec, run_id=job_id)

    async def _prepare(self, box: str, spec: JobSpec) -> JobSpec:
        """On the box that takes the job: its adapters uploaded there, its device the box's when [gates] said auto."""
        from remotes.check import load_report

        subjects = []
        for s in spec.config.subjects:
            if s.adapter:
                folder = self.sources[s.adapter]
                files = [folder / name for name in ADAPTER_FILES if (folder / name).is_file()]
                s = s.model_copy(update={"adapter": await upload(self.home, box, files, f"{spec.name}-{folder.name}")})
            subjects.append(s)
        update: dict = {"subjects": subjects}
        if spec.name in self.auto_device:
            update["device"] = "cuda" if load_report(self.home, box).get("gpus") else "cpu"
        return JobSpec(spec.kind, spec.config.model_copy(update=update), spec.name, spec.experiment)

    def _say(self, line: str) -> None:
        if self.on_state:
            self.on_state(line)

    async def watch(self, finished: asyncio.Event) -> list:
        """Gate checkpoints as they arrive until the training run has ended, then wait for the gate jobs."""
        worker = asyncio.ensure_future(self.pool.run())
        try:
            while not finished.is_set():
                await self._scan()
                await asyncio.sleep(self.poll_s)
            await self._scan()  # what the follower's last pass ingested
            self.pool.close()
            return await worker
        finally:
            if not worker.done():
                worker.cancel()


async def gate_alongside(home, store, run_id: str, follow, on_state: Callable[[str], None] | None = None,
                         poll_s: float = 0.2) -> str:
    """Await `follow` (a coroutine that follows the run to its end, returning its final status); when the run gates
    by fan-out, gate its checkpoints meanwhile and return only when their gate jobs have ended too."""
    from remotes.drivers import driver_for
    from store.queries import get_run

    run = get_run(store, run_id)
    following = asyncio.ensure_future(follow)
    try:
        boxes = await _gate_boxes(driver_for(home, store, run.box), run, following, on_state, poll_s) \
            if run.kind.startswith("train.") else []
        if not boxes:
            return await following
        finished = asyncio.Event()
        gating = asyncio.ensure_future(FanoutGating(home, store, run, boxes, on_state, poll_s).watch(finished))
        try:
            status = await following
        except BaseException:
            gating.cancel()
            raise
        finished.set()
        results = await gating
    finally:
        if not following.done():
            following.cancel()
    failed = [r for r in results if r.status != "succeeded"]
    if failed and on_state:
        on_state(f"{len(failed)} of {len(results)} gate job(s) did not succeed: "
                 + "; ".join(f"{r.run_id or 'job ' + str(r.index)} {r.status}" for r in failed))
    return status


async def _gate_boxes(driver, run, following, on_state, poll_s: float) -> list[str]:
    """The run's fan-out gate boxes, from its job.toml (written when the job starts: waited for)."""
    while True:
        try:
            raw = await driver.read_file(run, "job.toml")
        except (BoxError, OSError, asyncssh.Error) as e:  # following copes with outages; gating starts next time
            if on_state:
                on_state(f"{e}: checkpoints that gate by fan-out wait for `slayer runs attach {run.id}`")
            return []
        if raw is not None:
            return fanout_boxes(tomllib.loads(raw.decode()))
        if following.done():
            return []
        await asyncio.sleep(poll_s)
