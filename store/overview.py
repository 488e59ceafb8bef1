"""The console's overviews of the store: experiment summaries, subjects, recent decisions, active runs and the
change counts the console polls. Rows become plain objects here, so the console never builds SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import case, func, select

from engine.vocab import ACTIVE, SUBJECT_KINDS
from store.models import Decision, Experiment, GateResult, Run, RunCursor, Subject


@dataclass
class ExperimentSummary:
    name: str
    runs: int
    active: int
    subjects: int
    decisions: int


def experiment_summaries(store) -> list[ExperimentSummary]:
    """Every experiment, newest first, with run / subject / decision counts."""
    runs = (select(Run.experiment_id, func.count().label("n"),
                   func.sum(case((Run.status.in_(ACTIVE), 1), else_=0)).label("active"))
            .group_by(Run.experiment_id).subquery())
    subjects = select(Subject.experiment_id, func.count().label("n")).group_by(Subject.experiment_id).subquery()
    decisions = (select(Subject.experiment_id, func.count().label("n"))
                 .join(Decision, Decision.subject_pk == Subject.id).group_by(Subject.experiment_id).subquery())
    q = (select(Experiment.name, runs.c.n, runs.c.active, subjects.c.n, decisions.c.n)
         .outerjoin(runs, runs.c.experiment_id == Experiment.id)
         .outerjoin(subjects, subjects.c.experiment_id == Experiment.id)
         .outerjoin(decisions, decisions.c.experiment_id == Experiment.id)
         .order_by(Experiment.created_ms.desc(), Experiment.id.desc()))
    with store.session() as s:
        return [ExperimentSummary(name, r or 0, a or 0, sj or 0, d or 0) for name, r, a, sj, d in s.execute(q).all()]


@dataclass
class SubjectView:
    subject_id: str
    name: str
    kind: str
    step: int | None
    run_id: str | None
    experiment: str
    recipe: dict


def list_subjects(store, experiment: str | None = None) -> list[SubjectView]:
    """Subjects of one experiment (all when None), base first, then by kind and step."""
    q = select(Subject, Experiment.name).join(Experiment, Subject.experiment_id == Experiment.id)
    if experiment:
        q = q.where(Experiment.name == experiment)
    with store.session() as s:
        rows = [SubjectView(sj.subject_id, sj.name, sj.kind, sj.step, sj.run_id, exp, sj.recipe)
                for sj, exp in s.execute(q).all()]
    return sorted(rows, key=lambda v: (v.experiment, SUBJECT_KINDS.index(v.kind), v.step or 0, v.name))


@dataclass
class RecentDecision:
    """One line of the dashboard's decision list (store.decisions.DecisionView is the full record)."""

    experiment: str
    subject: str
    verdict: str
    reason: str
    actor: str
    override: bool
    created_ms: int


def recent_decisions(store, limit: int = 10) -> list[RecentDecision]:
    q = (select(Decision, Subject.name, Experiment.name)
         .join(Subject, Decision.subject_pk == Subject.id)
         .join(Experiment, Subject.experiment_id == Experiment.id)
         .order_by(Decision.created_ms.desc(), Decision.id.desc()).limit(limit))
    with store.session() as s:
        return [RecentDecision(exp, name, d.verdict, d.reason, d.actor, d.override, d.created_ms)
                for d, name, exp in s.execute(q).all()]


def active_runs(store) -> list[tuple[str, str, str]]:
    """(run id, box, run directory) of every queued or running run."""
    with store.session() as s:
        return [tuple(r) for r in s.execute(select(Run.id, Run.box, Run.run_dir).where(Run.status.in_(ACTIVE))).all()]


class Counts(NamedTuple):
    """Counts that grow whenever something the console shows changes."""

    runs: int
    events: int
    decisions: int
    subjects: int
    experiments: int
    gate_results: int


def change_counts(store) -> Counts:
    def count(table):
        return select(func.count()).select_from(table).scalar_subquery()

    q = select(count(Run), select(func.coalesce(func.sum(RunCursor.seq), 0)).scalar_subquery(), count(Decision),
               count(Subject), count(Experiment), select(func.coalesce(func.max(GateResult.id), 0)).scalar_subquery())
    with store.session() as s:
        return Counts(*s.execute(q).one())


def results_key(store) -> tuple:
    """What a delta table depends on: gate results, subjects and decisions (one cheap query)."""
    q = select(select(func.coalesce(func.max(GateResult.id), 0)).scalar_subquery(),
               select(func.count()).select_from(Subject).scalar_subquery(),
               select(func.count()).select_from(Decision).scalar_subquery())
    with store.session() as s:
        return tuple(s.execute(q).one())
