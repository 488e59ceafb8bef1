"""Read models of the store: rows become plain domain objects at this boundary."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import and_, func, select

from engine.errors import NotFound, SpecError
from store.models import Experiment, GateResult, Metric, Run, Subject
from store.store import Store


@dataclass
class RunView:
    id: str
    experiment: str | None
    kind: str
    name: str | None
    status: str
    error: str | None
    box: str
    run_dir: str
    pid: int | None
    created_ms: int
    started_ms: int | None
    ended_ms: int | None
    progress_done: float | None
    progress_total: float | None
    progress_unit: str | None
    policy_overrides: list[dict] | None  # locked rules the run broke under a recorded override: rule, field, reason

    def as_dict(self) -> dict:
        return asdict(self)


_COLUMNS = (Run.id, Experiment.name, Run.kind, Run.name, Run.status, Run.error, Run.box, Run.run_dir, Run.pid,
            Run.created_ms, Run.started_ms, Run.ended_ms, Run.progress_done, Run.progress_total, Run.progress_unit,
            Run.policy_overrides)


def _select_runs():
    # Plain column tuples, not ORM entities: a 10k-run listing stays in the tens of milliseconds.
    return select(*_COLUMNS).outerjoin(Experiment, Run.experiment_id == Experiment.id)


def list_runs(store: Store, experiment: str | None = None, limit: int | None = None) -> list[RunView]:
    q = _select_runs()
    if experiment:
        q = q.where(Experiment.name == experiment)
    q = q.order_by(Run.created_ms.desc(), Run.id.desc())
    if limit:
        q = q.limit(limit)
    with store.engine.connect() as conn:
        return [RunView(*row) for row in conn.execute(q)]


def get_run(store: Store, run_id: str) -> RunView:
    """A run by id or unique id prefix."""
    with store.engine.connect() as conn:
        rows = (conn.execute(_select_runs().where(Run.id == run_id)).all()
                or conn.execute(_select_runs().where(Run.id.startswith(run_id, autoescape=True)).limit(2)).all())
    if not rows:
        raise NotFound(f"{store.url}: no run {run_id!r} (see `slayer runs`)")
    if len(rows) > 1:
        raise SpecError(f"{store.url}: run prefix {run_id!r} is ambiguous")
    return RunView(*rows[0])


LIVE_METRICS = ("loss", "drift_kl")  # what a training run shows beside its progress: fit, and drift from the base


def latest_metrics(store: Store, run_ids: list[str], keys=LIVE_METRICS) -> dict[str, dict[str, tuple[int, float]]]:
    """run id → key → (step, value) of the last logged value of each key."""
    if not run_ids:
        return {}
    last = (select(Metric.run_id, Metric.key, func.max(Metric.seq).label("seq"))
            .where(Metric.run_id.in_(run_ids), Metric.key.in_(keys)).group_by(Metric.run_id, Metric.key).subquery())
    query = select(Metric.run_id, Metric.key, Metric.step, Metric.value).join(
        last, and_(Metric.run_id == last.c.run_id, Metric.seq == last.c.seq))
    found: dict[str, dict[str, tuple[int, float]]] = {}
    with store.engine.connect() as conn:
        for run_id, key, step, value in conn.execute(query):
            found.setdefault(run_id, {})[key] = (step, value)
    return found


def count_rows(store: Store, table) -> int:
    with store.session() as s:
        return s.execute(select(func.count()).select_from(table)).scalar_one()


def list_experiments(store: Store) -> list[str]:
    with store.session() as s:
        return list(s.execute(select(Experiment.name).order_by(Experiment.created_ms)).scalars())


def run_checkpoints(store: Store, run_id: str) -> list[tuple[int, dict]]:
    """(step, subject record) of each checkpoint a training run has announced, by step."""
    query = select(Subject.step, Subject.subject_id, Subject.name, Subject.kind, Subject.recipe).where(
        Subject.run_id == run_id, Subject.kind == "checkpoint").order_by(Subject.step)
    with store.engine.connect() as conn:
        return [(step, {"id": sid, "name": name, "kind": kind, "recipe": recipe})
                for step, sid, name, kind, recipe in conn.execute(query)]


def gated(store: Store, experiment: str, subject_id: str) -> set[str]:
    """The gates a subject has results on in an experiment (any run)."""
    query = (select(GateResult.gate).join(Subject, GateResult.subject_pk == Subject.id)
             .join(Experiment, Subject.experiment_id == Experiment.id)
             .where(Experiment.name == experiment, Subject.subject_id == subject_id).distinct())
    with store.engine.connect() as conn:
        return set(conn.execute(query).scalars())
