"""Ingest a run's events.jsonl into the store, resumable by byte offset and seq.

Ingesting twice, ingesting a file still being written, or ingesting after a crash of either side gives
the same rows: events with seq ≤ the cursor are skipped, a half-written last line waits for the next
pass, and rows + cursor commit in one transaction. A malformed line in the middle is an error naming
file:line; every row before it stays.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlmodel import Session

from engine.errors import SpecError
from engine.events import (ENVELOPE, EVENTS, ArtifactEvent, CheckpointEvent, GateResultEvent, ProgressEvent,
                           StatusEvent, SubjectRecord)
from engine.vocab import TERMINAL
from store.models import Artifact, Experiment, GateResult, Run, RunCursor, Subject
from store.store import Store, now_ms

try:
    from orjson import loads as _loads
except ImportError:  # orjson is optional; the stdlib parser gives the same objects
    _loads = json.loads


@dataclass
class IngestStats:
    events: int = 0
    offset: int = 0
    seq: int = 0
    status: str | None = None


def fingerprint_hash(fp: dict) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:16]


def get_or_create_experiment(s: Session, name: str) -> Experiment:
    exp = s.execute(select(Experiment).where(Experiment.name == name)).scalars().first()
    if exp is None:
        exp = Experiment(name=name, created_ms=now_ms())
        s.add(exp)
        s.flush()
    return exp


def register_run(store: Store, run_id: str, *, kind: str = "", name: str | None = None,
                 experiment: str | None = None, run_dir: str = "", box: str = "local", pid: int | None = None,
                 price_per_hour: float | None = None, gpus: int | None = None,
                 policy_overrides: list[dict] | None = None) -> None:
    """Create (or complete) the run's row before its first event is ingested; the box's price goes with it, and
    the policy overrides it launched under."""
    with store.write() as s:
        run = s.get(Run, run_id)
        if run is None:
            run = Run(id=run_id, kind=kind, name=name, run_dir=run_dir, box=box, pid=pid, created_ms=now_ms())
            s.add(run)
        run.kind = run.kind or kind
        run.run_dir = run_dir or run.run_dir
        run.pid = pid or run.pid
        run.price_per_hour = run.price_per_hour if price_per_hour is None else price_per_hour
        run.gpus = run.gpus if gpus is None else gpus
        run.policy_overrides = run.policy_overrides if policy_overrides is None else policy_overrides
        if experiment and run.experiment_id is None:
            run.experiment_id = get_or_create_experiment(s, experiment).id


def cursor_of(store: Store, run_id: str) -> tuple[int, int]:
    with store.session() as s:
        c = s.get(RunCursor, run_id)
        return (c.offset, c.seq) if c else (0, 0)


def _upsert_subject(s: Session, run: Run, subject: SubjectRecord, cache: dict, step: int | None = None) -> Subject:
    key = subject.id
    if key in cache:
        return cache[key]
    row = s.execute(select(Subject).where(Subject.experiment_id == run.experiment_id,
                                       Subject.subject_id == key)).scalars().first()
    if row is None:
        row = Subject(subject_id=key, experiment_id=run.experiment_id, name=subject.name or key,
                      kind=subject.kind, recipe=subject.recipe,
                      run_id=run.id if subject.kind == "checkpoint" else None, step=step, created_ms=now_ms())
        s.add(row)
        s.flush()
    cache[key] = row
    return row


class _Batch:
    """Rows built from one pass of events, written with bulk inserts."""

    def __init__(self, s: Session, run: Run):
        self.s, self.run = s, run
        self.metrics: list[tuple] = []
        self.subjects: dict[str, Subject] = {}

    def apply(self, e: dict) -> None:
        """Apply one event (not a metric: those take the hot path in ingest_bytes); unknown types are skipped,
        so a store reads runs of a newer engine."""
        handler = _HANDLERS.get(e["type"])
        if handler is not None:
            body = EVENTS[e["type"]].model_validate({k: v for k, v in e.items() if k not in ENVELOPE})
            handler(self, body, e["seq"], int(e["ts"] * 1000))

    def _progress(self, e: ProgressEvent, seq: int, ms: int) -> None:
        run = self.run
        run.progress_done, run.progress_total, run.progress_unit, run.progress_label = e.done, e.total, e.unit, e.label

    def _status(self, e: StatusEvent, seq: int, ms: int) -> None:
        run = self.run
        if e.status == "queued":
            run.kind = run.kind or e.kind
            run.name = run.name or e.name
            if run.experiment_id is None:
                run.experiment_id = get_or_create_experiment(self.s, e.experiment or "default").id
        elif e.status == "running":
            run.started_ms = run.started_ms or ms
            run.pid = e.pid or run.pid
        if e.status in TERMINAL:
            run.ended_ms = ms
            run.error = e.error
        run.status = e.status

    def _checkpoint(self, e: CheckpointEvent, seq: int, ms: int) -> None:
        _upsert_subject(self.s, self.run, e.subject, self.subjects, step=e.step)

    def _gate_result(self, e: GateResultEvent, seq: int, ms: int) -> None:
        subj = _upsert_subject(self.s, self.run, e.subject, self.subjects)
        self.s.add(GateResult(
            run_id=self.run.id, seq=seq, subject_pk=subj.id, gate=e.gate, axis=e.axis, scorer=e.scorer,
            primary_metric=e.primary or next(iter(e.metrics)), higher_is_better=e.higher_is_better,
            tolerance_pp=e.tolerance_pp, metrics=e.metrics, stderr=e.stderr, n=e.n, outcomes=e.outcomes,
            preds=e.preds, golds=e.golds, fingerprint=e.fingerprint, fingerprint_hash=fingerprint_hash(e.fingerprint),
            elapsed_s=e.elapsed_s, created_ms=ms))

    def _artifact(self, e: ArtifactEvent, seq: int, ms: int) -> None:
        self.s.add(Artifact(run_id=self.run.id, seq=seq, path=e.path, kind=e.kind, sha256=e.sha256, bytes=e.bytes,
                            extra=dict(e.model_extra or {}), created_ms=ms))

    def flush(self) -> None:
        if self.metrics:
            # The driver's executemany on plain tuples: SQLAlchemy's per-row parameter building
            # would cost more than the insert itself (bench/ingest.py).
            conn = self.s.connection()
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            conn.exec_driver_sql(f"INSERT INTO metrics (run_id, seq, key, step, value, ts_ms) "
                                 f"VALUES ({', '.join([mark] * 6)})", self.metrics)
            self.metrics = []


_HANDLERS = {"progress": _Batch._progress, "status": _Batch._status, "checkpoint": _Batch._checkpoint,
             "gate_result": _Batch._gate_result, "artifact": _Batch._artifact}


def _parse_lines(data: bytes, offset: int, first_line: int, source: str):
    """Yield (line number, end_offset, event) for every complete line of `data`; raise at a malformed one."""
    end = offset
    for line_no, raw in enumerate(data[:data.rfind(b"\n") + 1].split(b"\n")[:-1], start=first_line + 1):
        end += len(raw) + 1
        try:
            event = _loads(raw)
            if not isinstance(event, dict) or not isinstance(event.get("seq"), int) or "type" not in event:
                raise ValueError("not an event object with seq and type")
        except ValueError as e:
            raise SpecError(f"{source}:{line_no}: malformed event line ({e})") from None
        yield line_no, end, event


def ingest_bytes(store: Store, run_id: str, data: bytes, offset: int, source: str,
                 experiment: str | None = None, box: str = "local", run_dir: str = "") -> IngestStats:
    """Ingest the complete lines of `data`, the bytes of an events file starting at byte `offset`.

    Safe to call with data the store has partly seen (seq decides) and with a half-written last line.
    """
    stats = IngestStats()
    error: SpecError | None = None
    with store.write(lock_key=f"ingest:{run_id}") as s:
        run = s.get(Run, run_id)
        if run is None:
            run = Run(id=run_id, box=box, run_dir=run_dir, created_ms=now_ms())
            s.add(run)
            s.flush()
        if experiment and run.experiment_id is None:
            run.experiment_id = get_or_create_experiment(s, experiment).id
        cursor = s.get(RunCursor, run_id) or RunCursor(run_id=run_id)
        s.add(cursor)
        batch = _Batch(s, run)
        # Lines before the cursor were ingested; the line number of this chunk's first line is
        # derivable from seq only when the chunk starts at the cursor.
        first_line = cursor.seq if offset == cursor.offset else 0
        last_seq, last_offset = cursor.seq or 0, cursor.offset or 0
        metrics = batch.metrics
        try:
            for line_no, end, event in _parse_lines(data, offset, first_line, source):
                seq = event["seq"]
                if seq <= last_seq:
                    continue
                if seq != last_seq + 1:
                    raise SpecError(f"{source}: events jump from seq {last_seq} to {seq} (a gap)")
                if event.get("run", run_id) != run_id:
                    raise SpecError(f"{source}: event seq {seq} belongs to run {event.get('run')!r}, not {run_id!r}")
                try:
                    if event["type"] == "metric":  # the hot path: training logs thousands of these
                        metrics.append((run_id, seq, event["key"], event.get("step", 0), event["value"],
                                        int(event["ts"] * 1000)))
                    else:
                        batch.apply(event)
                except ValidationError as e:
                    first = e.errors()[0]
                    raise SpecError(f"{source}:{line_no}: {event['type']} event without a valid "
                                    f"{'.'.join(map(str, first['loc']))} ({first['msg']})") from None
                except (KeyError, TypeError, ValueError) as e:
                    raise SpecError(f"{source}:{line_no}: {event['type']} event without a valid "
                                    f"{e.args[0] if isinstance(e, KeyError) else 'field'} ({e.__class__.__name__})") from None
                last_seq, last_offset = seq, end
                stats.events += 1
        except SpecError as e:
            error = e  # keep every row before the bad line
        batch.flush()
        cursor.seq, cursor.offset, cursor.updated_ms = last_seq, max(last_offset, cursor.offset or 0), now_ms()
        stats.offset, stats.seq, stats.status = cursor.offset, cursor.seq, run.status
    if error:
        raise error
    return stats


def read_run_id(run_dir: Path) -> str:
    """The run id recorded in the first event, else the directory's name."""
    events = run_dir / "events.jsonl"
    with open(events, "rb") as f:
        first = f.readline()
    if first.endswith(b"\n"):
        try:
            return _loads(first)["run"]
        except (ValueError, KeyError, TypeError):
            pass
    return run_dir.name


def ingest_run_dir(store: Store, run_dir: str | Path, experiment: str | None = None, box: str = "local") -> IngestStats:
    """Ingest RUN_DIR/events.jsonl from where the store left off (idempotent)."""
    run_dir = Path(run_dir)
    events = run_dir / "events.jsonl"
    if not events.is_file():
        raise SpecError(f"{run_dir}: not a run directory (no events.jsonl)")
    run_id = read_run_id(run_dir)
    offset, _ = cursor_of(store, run_id)
    with open(events, "rb") as f:
        f.seek(offset)
        data = f.read()
    if experiment is None and offset == 0:
        experiment = _experiment_from_job(run_dir)
    return ingest_bytes(store, run_id, data, offset, str(events), experiment=experiment, box=box,
                        run_dir=str(run_dir.resolve()))


def _experiment_from_job(run_dir: Path) -> str | None:
    try:
        return tomllib.loads((run_dir / "job.toml").read_text()).get("experiment")
    except (OSError, tomllib.TOMLDecodeError):
        return None
