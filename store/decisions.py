"""Accept/reject decisions: who, when, why, and a frozen copy of the delta row they were based on."""

from __future__ import annotations

import getpass
import socket
from dataclasses import asdict, dataclass

from sqlalchemy import select

from engine.errors import NotFound, SpecError
from engine.vocab import DECISIONS
from store.deltas import delta_table, get_experiment, resolve_subject
from store.models import Decision, Experiment, Subject
from store.store import Store, now_ms


@dataclass
class DecisionView:
    id: int
    experiment: str
    subject_id: str
    name: str
    verdict: str
    reason: str
    actor: str
    override: bool
    created_ms: int
    snapshot: dict

    def as_dict(self) -> dict:
        return asdict(self)


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER (containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def find_subject(store: Store, ref: str, experiment: str | None = None) -> tuple[str, Subject]:
    """(experiment name, subject) for an id, id prefix or name; within `experiment` when given, else
    across all experiments (it must then be unambiguous)."""
    with store.session() as s:
        if experiment:
            exp = get_experiment(s, experiment)
            subjects = list(s.execute(select(Subject).where(Subject.experiment_id == exp.id)).scalars())
            return exp.name, resolve_subject(subjects, ref, exp.name)
        rows = s.execute(select(Subject, Experiment.name).join(Experiment, Subject.experiment_id == Experiment.id)).all()
    found = []
    for exp_name in sorted({name for _, name in rows}):
        try:
            found.append((exp_name, resolve_subject([x for x, n in rows if n == exp_name], ref, exp_name)))
        except NotFound:
            pass
    if not found:
        raise NotFound(f"subject {ref!r}: not found in any experiment")
    if len(found) > 1:
        raise SpecError(f"subject {ref!r}: in several experiments ({', '.join(e for e, _ in found)}); "
                        f"name one with --experiment")
    return found[0]


def decide(store: Store, subject: str, verdict: str, reason: str, actor: str | None = None, override: bool = False,
           lam: float | None = None, tolerance: float | None = None, experiment: str | None = None,
           config_for=None) -> DecisionView:
    """Record a decision on a subject with the delta row it was based on (under `lam` and `tolerance`, scored by
    `config_for(experiment)` — e.g. Settings.experiment_config — else the plan's objective).

    Accepting a subject whose row has any FAIL cell needs override=True and a reason that says
    "override" — a significant regression is never accepted by accident."""
    if verdict not in DECISIONS:
        raise SpecError(f"decision: verdict must be accept or reject, not {verdict!r}")
    reason = (reason or "").strip()
    if not reason:
        raise SpecError("decision: --reason is required (say why)")
    exp_name, subj = find_subject(store, subject, experiment)
    table = delta_table(store, exp_name, lam=lam, tolerance_pp=tolerance,
                        config=config_for(exp_name) if config_for else None)
    row = table.row(subj.subject_id)
    fails = [g for g, c in row.cells.items() if c.verdict == "FAIL"]
    if verdict == "accept" and fails:
        if not override:
            raise SpecError(f"decision: {subj.name} has FAIL on {', '.join(fails)}; accepting it needs --override "
                            f"and a reason that says so")
        if "override" not in reason.lower():
            raise SpecError(f"decision: the reason for overriding FAIL on {', '.join(fails)} must say 'override'")
    snapshot = {"row": row.as_dict(), "base_subject_id": table.base_subject_id, "lambda": table.lam,
                "tolerance_pp": tolerance, "gates": [list(g) for g in table.gates]}
    with store.write() as s:
        d = Decision(subject_pk=subj.id, verdict=verdict, reason=reason, actor=actor or default_actor(),
                     override=bool(override and fails), snapshot=snapshot, created_ms=now_ms())
        s.add(d)
        s.flush()
        return _view(d, exp_name, subj)


def _view(d: Decision, exp_name: str, subj: Subject) -> DecisionView:
    return DecisionView(d.id, exp_name, subj.subject_id, subj.name, d.verdict, d.reason, d.actor, d.override,
                        d.created_ms, d.snapshot)


def decisions_for(store: Store, experiment: str) -> list[DecisionView]:
    """Every decision of an experiment, oldest first (the decision trail)."""
    with store.session() as s:
        exp = get_experiment(s, experiment)
        rows = s.execute(select(Decision, Subject).join(Subject, Decision.subject_pk == Subject.id)
                         .where(Subject.experiment_id == exp.id).order_by(Decision.created_ms, Decision.id)).all()
        return [_view(d, exp.name, subj) for d, subj in rows]
