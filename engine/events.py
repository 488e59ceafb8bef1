"""The events.jsonl contract and its writer: one JSON object per line, written whole with one write().

Every event carries `run`, `seq` (1, 2, 3… without gaps), `ts` (epoch seconds) and `type`; the rest of it is
one of the typed bodies below, which the writer checks before writing and the store's ingest reads. Extra
fields are allowed (and kept by ingest where a row has room for them), so a newer job stays readable.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from engine.vocab import DEFAULT_TOLERANCE_PP, RUN_STATUSES, SUBJECT_KINDS

ENVELOPE = ("run", "seq", "ts", "type")


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class StatusEvent(_Body):
    status: Literal[RUN_STATUSES]
    error: Optional[str] = None  # why it failed or was cancelled
    kind: str = ""  # queued: the job kind, name and experiment
    name: Optional[str] = None
    experiment: Optional[str] = None
    pid: Optional[int] = None  # running: the job's process


class ProgressEvent(_Body):
    done: float
    total: Optional[float] = None
    unit: str = "items"
    label: str = ""


class MetricEvent(_Body):
    key: str
    value: float
    step: int = 0


class SubjectRecord(_Body):
    """What was evaluated (engine.subjects.make_subject): a stable id, a name, a kind and the recipe that builds it
    (`Recipe.as_dict()`; kept as the dict a job wrote, so a newer engine's recipe field stays readable)."""

    id: str
    name: Optional[str] = None
    kind: Literal[SUBJECT_KINDS] = "checkpoint"
    recipe: dict[str, Any] = Field(default_factory=dict)


class CheckpointEvent(_Body):
    step: int
    epoch: Optional[float] = None
    path: str
    subject: SubjectRecord


class GateResultEvent(_Body):
    """One gate's aggregates for one subject: no item text, ever."""

    subject: SubjectRecord
    gate: str
    axis: str = ""
    scorer: str = ""
    metrics: dict[str, float]
    primary: Optional[str] = None  # default: the first metric
    higher_is_better: bool = True
    tolerance_pp: float = DEFAULT_TOLERANCE_PP
    stderr: dict[str, float] = Field(default_factory=dict)
    n: int
    outcomes: list[float] = Field(default_factory=list)  # per item, dataset order
    preds: Optional[list[int]] = None
    golds: Optional[list[int]] = None
    fingerprint: dict[str, Any] = Field(default_factory=dict)
    elapsed_s: Optional[float] = None
    items_per_s: Optional[float] = None


class ArtifactEvent(_Body):
    path: str  # relative to the run directory
    kind: str
    sha256: Optional[str] = None
    bytes: int = 0


class LogEvent(_Body):
    level: str = "info"
    message: str


EVENTS: dict[str, type[_Body]] = {"status": StatusEvent, "progress": ProgressEvent, "metric": MetricEvent,
                                  "checkpoint": CheckpointEvent, "gate_result": GateResultEvent,
                                  "artifact": ArtifactEvent, "log": LogEvent}
EVENT_TYPES = tuple(EVENTS)


def _last_seq(path: Path) -> int:
    """The seq of the last complete line (a resumed job continues the numbering)."""
    if not path.exists():
        return 0
    last = 0
    with open(path, "rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                last = json.loads(line)["seq"]
    return last


def _truncate_partial_tail(path: Path) -> None:
    """Drop a half-written last line left by a killed writer, so appends start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


class EventWriter:
    """Appends events to RUN_DIR/events.jsonl. Thread-safe; each line is one os.write on an O_APPEND fd."""

    def __init__(self, path: str | os.PathLike, run_id: str):
        self.path = Path(path)
        self.run_id = run_id
        _truncate_partial_tail(self.path)
        self._seq = _last_seq(self.path)
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(self, type: str, **fields: Any) -> dict:
        if type not in EVENTS:
            raise ValueError(f"unknown event type {type!r}")
        EVENTS[type].model_validate(fields)  # a wrong or missing field fails here, in the job, not at ingest
        with self._lock:
            self._seq += 1
            event = {"run": self.run_id, "seq": self._seq, "ts": round(time.time(), 6), "type": type, **fields}
            line = (json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
            os.write(self._fd, line)
        return event

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class JobContext:
    """What a job sees: its run directory, its outputs folder, and typed emitters for its events."""

    def __init__(self, run_dir: Path, writer: EventWriter):
        self.run_dir = Path(run_dir).resolve()  # artifacts are recorded relative to it, whatever the cwd
        self.outputs = self.run_dir / "outputs"
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.run_id = writer.run_id
        self._w = writer

    def progress(self, done: int | float, total: int | float | None, unit: str = "items", label: str = "") -> None:
        self._w.emit("progress", done=done, total=total, unit=unit, label=label)

    def metric(self, key: str, value: float, step: int = 0, **extra: Any) -> None:
        self._w.emit("metric", key=key, value=float(value), step=int(step), **extra)

    def log(self, message: str, level: str = "info") -> None:
        self._w.emit("log", level=level, message=message)

    def checkpoint(self, step: int, path: str | os.PathLike, subject: dict, epoch: float | None = None,
                   **extra: Any) -> None:
        """A saved checkpoint; `subject` is {id, name, kind, recipe} so the store can register it."""
        self._w.emit("checkpoint", step=int(step), epoch=epoch, path=str(path), subject=subject, **extra)

    def gate_result(self, result: dict) -> None:
        """One gate's aggregates for one subject (see engine.gates): no item text, ever."""
        self._w.emit("gate_result", **result)

    def artifact(self, path: str | os.PathLike, kind: str, **extra: Any) -> None:
        p = Path(path)
        rel = os.path.relpath(p, self.run_dir) if p.is_absolute() else str(p)
        full = p if p.is_absolute() else self.run_dir / p
        size = full.stat().st_size if full.is_file() else sum(f.stat().st_size for f in full.rglob("*") if f.is_file())
        digest = sha256_file(full) if full.is_file() else None
        self._w.emit("artifact", path=rel, kind=kind, sha256=digest, bytes=size, **extra)

    def emit(self, type: str, **fields: Any) -> dict:
        return self._w.emit(type, **fields)
