"""Cost from the store: each run's wall time × its box's price at launch → GPU-hours and money, per run, per
experiment, for a subject's lineage; serving cost per 1M output tokens from bench.serve throughput."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from store.models import Artifact, GateResult, Run, Subject


@dataclass(frozen=True)
class RunCost:
    run_id: str
    kind: str
    box: str
    hours: float | None  # wall time, started → ended (None while it runs)
    gpus: int
    price_per_hour: float | None

    @property
    def gpu_hours(self) -> float | None:
        return None if self.hours is None else self.hours * self.gpus

    @property
    def money(self) -> float | None:
        return None if self.hours is None or self.price_per_hour is None else self.hours * self.price_per_hour


def run_cost(run: Run) -> RunCost:
    hours = (run.ended_ms - run.started_ms) / 3_600_000 if None not in (run.started_ms, run.ended_ms) else None
    return RunCost(run.id, run.kind, run.box, hours, run.gpus if run.gpus is not None else 1, run.price_per_hour)


@dataclass(frozen=True)
class CostTotal:
    runs: int
    hours: float
    gpu_hours: float
    money: float | None  # None when no run has a price
    unpriced: int  # finished runs without a price (their money is missing from `money`)

    @classmethod
    def of(cls, costs: list[RunCost]) -> "CostTotal":
        done = [c for c in costs if c.hours is not None]
        priced = [c.money for c in done if c.money is not None]
        return cls(len(costs), sum(c.hours for c in done), sum(c.gpu_hours for c in done),
                   sum(priced) if priced else None, len(done) - len(priced))


def experiment_costs(s, exp_id: int) -> list[RunCost]:
    runs = s.execute(select(Run).where(Run.experiment_id == exp_id).order_by(Run.created_ms, Run.id)).scalars()
    return [run_cost(r) for r in runs]


LINEAGE_KINDS = ("data.", "model.", "demo.", "train.", "merge.", "export.")


def lineage_costs(s, subj: Subject) -> list[RunCost]:
    """The runs that built `subj`: the experiment's data and model preparation, the training run of its adapter,
    and the merges and exports of that adapter (gate and bench runs are evaluation, not lineage)."""
    adapter = (subj.recipe or {}).get("adapter")
    trainers = {x.run_id for x in s.execute(select(Subject).where(Subject.experiment_id == subj.experiment_id,
                                                                  Subject.run_id.is_not(None))).scalars()
                if x.run_id and (x.subject_id == subj.subject_id or (adapter and (x.recipe or {}).get("adapter")
                                                                     == adapter))}
    out = []
    for c in experiment_costs(s, subj.experiment_id):
        if c.kind.startswith("train."):
            if c.run_id in trainers:
                out.append(c)
        elif c.kind.startswith(("merge.", "export.")):
            if _made_from(s, c.run_id, subj, adapter):
                out.append(c)
        elif c.kind.startswith(LINEAGE_KINDS):
            out.append(c)
    return out


def _made_from(s, run_id: str, subj: Subject, adapter: str | None) -> bool:
    """Did this merge/export run produce `subj` or work on its adapter? (read from its artifacts' subjects)"""
    for extra, in s.execute(select(Artifact.extra).where(Artifact.run_id == run_id)).all():
        sub = (extra or {}).get("subject") or {}
        source = (extra or {}).get("source") or {}
        if sub.get("id") == subj.subject_id or (adapter and adapter in (source.get("adapter"),
                                                                         (sub.get("recipe") or {}).get("adapter"))):
            return True
    return False


@dataclass(frozen=True)
class ServingCost:
    """One bench.serve measurement (subject × concurrency) and what its throughput costs on its box."""

    subject_id: str
    subject: str  # its name
    kind: str
    gate: str  # serve_c<N>
    concurrency: int
    metrics: dict  # ttft_p50_ms, ttft_p95_ms, decode_tok_s, output_tok_s, req_s, e2e_p50_ms
    price_per_hour: float | None
    box: str
    fingerprint_hash: str

    @property
    def per_million_tokens(self) -> float | None:
        """Money per 1M output tokens at this concurrency: the box's hour over the tokens it serves in an hour."""
        tok_s = self.metrics.get("output_tok_s") or 0.0
        if self.price_per_hour is None or not tok_s:
            return None
        return self.price_per_hour / (tok_s * 3600) * 1e6


def serving_costs(s, subjects: list[Subject]) -> list[ServingCost]:
    """The newest bench.serve result per (subject, concurrency) of the given subjects."""
    by_pk = {x.id: x for x in subjects}
    q = (select(GateResult, Run).join(Run, GateResult.run_id == Run.id)
         .where(GateResult.subject_pk.in_(list(by_pk)), GateResult.scorer == "serve")
         .order_by(GateResult.created_ms.desc(), GateResult.id.desc()))
    seen, out = set(), []
    for r, run in s.execute(q).all():
        if (r.subject_pk, r.gate) in seen:
            continue
        seen.add((r.subject_pk, r.gate))
        subj = by_pk[r.subject_pk]
        out.append(ServingCost(subj.subject_id, subj.name, subj.kind, r.gate, int(r.fingerprint.get("concurrency", 0)),
                               dict(r.metrics), run.price_per_hour, run.box, r.fingerprint_hash))
    return sorted(out, key=lambda c: (c.concurrency, c.subject))
