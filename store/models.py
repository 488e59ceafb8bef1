"""SQLModel tables of the store. Timestamps are integer milliseconds since the epoch.

JSON columns hold recipes, metrics, per-item outcomes and fingerprints; never item text.
"""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, CheckConstraint, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from engine.vocab import DECISIONS, DEFAULT_TOLERANCE_PP, RUN_STATUSES, SUBJECT_KINDS, sql_in



class Experiment(SQLModel, table=True):
    __tablename__ = "experiments"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    base_subject: Optional[str] = Field(default=None, description="subject id treated as the base")
    created_ms: int = Field(sa_type=BigInteger)


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(sql_in("status", RUN_STATUSES), name="ck_run_status"),
    )
    id: str = Field(primary_key=True)
    experiment_id: Optional[int] = Field(default=None, foreign_key="experiments.id", index=True)
    kind: str = ""
    name: Optional[str] = None
    status: str = Field(default="queued", index=True)
    error: Optional[str] = None
    box: str = "local"
    run_dir: str = ""
    pid: Optional[int] = None
    created_ms: int = Field(index=True, sa_type=BigInteger)
    started_ms: Optional[int] = Field(default=None, sa_type=BigInteger)
    ended_ms: Optional[int] = Field(default=None, sa_type=BigInteger)
    progress_done: Optional[float] = None
    progress_total: Optional[float] = None
    progress_unit: Optional[str] = None
    progress_label: Optional[str] = None
    # The box's price when the run was launched (remotes.cost) and its GPU count: cost = wall hours × price.
    price_per_hour: Optional[float] = Field(default=None, description="box price per hour at launch")
    gpus: Optional[int] = Field(default=None, description="GPUs of the box, for GPU-hours")
    # The locked rules (engine.policy) this run broke under the experiment's [policy.override]: rule, field, reason.
    policy_overrides: Optional[list[dict[str, str]]] = Field(default=None, sa_column=Column(JSON, nullable=True))


class RunCursor(SQLModel, table=True):
    """How far a run's events.jsonl has been ingested: byte offset of the next line and last seq."""

    __tablename__ = "run_cursors"
    run_id: str = Field(primary_key=True, foreign_key="runs.id")
    offset: int = Field(default=0, sa_type=BigInteger)
    seq: int = 0
    updated_ms: int = Field(default=0, sa_type=BigInteger)


class Metric(SQLModel, table=True):
    """One logged value. Keyed by (run, seq) — the event that carried it — so a row can never be doubled."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"), {"sqlite_with_rowid": False})
    run_id: str = Field(foreign_key="runs.id", primary_key=True)
    seq: int = Field(primary_key=True)
    key: str
    step: int
    value: float
    ts_ms: int = Field(sa_type=BigInteger)


class Subject(SQLModel, table=True):
    __tablename__ = "subjects"
    __table_args__ = (
        CheckConstraint(sql_in("kind", SUBJECT_KINDS), name="ck_subject_kind"),
        UniqueConstraint("experiment_id", "subject_id", name="uq_subject_experiment"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    subject_id: str = Field(index=True, description="stable id: hash of the recipe")
    experiment_id: Optional[int] = Field(default=None, foreign_key="experiments.id", index=True)
    name: str
    kind: str
    recipe: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    run_id: Optional[str] = Field(default=None, foreign_key="runs.id")
    step: Optional[int] = None
    created_ms: int = Field(sa_type=BigInteger)


class GateResult(SQLModel, table=True):
    __tablename__ = "gate_results"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_gate_results_run_seq"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id", index=True)
    seq: int
    subject_pk: int = Field(foreign_key="subjects.id", index=True)
    gate: str = Field(index=True)
    axis: str
    scorer: str = ""
    primary_metric: str
    higher_is_better: bool = True
    tolerance_pp: float = DEFAULT_TOLERANCE_PP
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    stderr: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    n: int
    outcomes: list[float] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    preds: Optional[list[int]] = Field(default=None, sa_column=Column(JSON, nullable=True))
    golds: Optional[list[int]] = Field(default=None, sa_column=Column(JSON, nullable=True))
    fingerprint: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    fingerprint_hash: str = Field(index=True)
    elapsed_s: Optional[float] = None
    created_ms: int = Field(sa_type=BigInteger)


class Decision(SQLModel, table=True):
    __tablename__ = "decisions"
    __table_args__ = (CheckConstraint(sql_in("verdict", DECISIONS), name="ck_decision_verdict"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    subject_pk: int = Field(foreign_key="subjects.id", index=True)
    verdict: str
    reason: str
    actor: str
    override: bool = False
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_ms: int = Field(sa_type=BigInteger)


class Artifact(SQLModel, table=True):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_artifacts_run_seq"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id", index=True)
    seq: int
    path: str
    kind: str
    sha256: Optional[str] = None
    bytes: int = Field(default=0, sa_type=BigInteger)
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_ms: int = Field(sa_type=BigInteger)
