"""Delta tables: every subject of an experiment vs the base per gate (paired, fingerprint-matched), scored.

Axes (engine.vocab). A gate's gain is its delta turned so that + is better; an axis's mean gain is the mean over its
compared gates. General regression = the worst drop (pp) over the general axes' gates (en_knowledge,
reasoning, math, code, multilingual, factuality, instruction, safety). Score (the v2.1 objective, weights and λ from the
experiment's config, store.experiment_config) = Σ weight(axis) · mean gain(axis) − λ · max(0, regression);
by default style gain + mean Polish NLU gain − λ · max(0, regression).

Verdicts per cell and per axis: an axis pools the paired items of its compared gates (stats.pooled) and is
judged against the axis's tolerance. PASS within tolerance, UNDERPOWERED when within tolerance but n could
not see a drop of the tolerance's size, WARN beyond it but not significant, FAIL significant beyond it.

Units. Outcomes within [0, 1] (accuracy, F1, probabilities) are proportions: deltas are percentage
points (×100). Other metrics (grammar errors per 100 words, judge scores) keep their own units, and
their tolerance is read in those units.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

from sqlalchemy import select

from engine.errors import NotFound, SpecError
from engine.vocab import COMPARED, DEFAULT_TOLERANCE_PP, GENERAL_AXES, STYLE_AXES, axis_order, worst_verdict
from store import stats
from store.experiment_config import ExperimentConfig
from store.models import Decision, Experiment, GateResult, Subject
from store.store import Store



@dataclass(frozen=True)
class DeltaCell:
    gate: str
    axis: str
    metric: str
    higher_is_better: bool
    base_value: float | None
    value: float | None
    delta_pp: float | None  # candidate − base, pp (or metric units, see the module docstring)
    ci_low_pp: float | None
    ci_high_pp: float | None
    p_value: float | None
    n: int | None
    detectable_pp: float | None  # smallest drop this n can detect (stats.detectable_drop*)
    tolerance_pp: float  # the tolerance the verdict used
    verdict: str  # PASS | WARN | FAIL | MISMATCH | BASE | NA
    note: str = ""
    gate_tolerance_pp: float = DEFAULT_TOLERANCE_PP  # the gate's own tolerance (used when no global one is set)
    method: str | None = None
    fingerprint_hash: str | None = None

    @property
    def gain_pp(self) -> float | None:
        """The delta with its sign turned so that positive is better."""
        if self.delta_pp is None:
            return None
        return self.delta_pp if self.higher_is_better else -self.delta_pp

    def detail(self) -> str:
        """One line: what the delta is and what n can and cannot detect."""
        if self.verdict not in COMPARED:
            return f"{self.gate} · {self.verdict}" + (f": {self.note}" if self.note else "")
        return (f"{self.gate} {self.delta_pp:+.1f} pp, paired CI [{self.ci_low_pp:+.1f}, {self.ci_high_pp:+.1f}], "
                f"p={self.p_value:.3g}, n={self.n}, detectable drop ≥ {self.detectable_pp:.1f} pp, "
                f"tolerance {self.tolerance_pp:g} pp → {self.verdict}")


@dataclass(frozen=True)
class AxisCell:
    """One axis of one subject: the paired items of its compared gates pooled into one comparison, turned so
    that + is better (stats.pooled), and judged against the axis's tolerance."""

    axis: str
    gates: tuple[str, ...]  # the gates pooled
    n: int | None
    gain_pp: float | None
    ci_low_pp: float | None
    ci_high_pp: float | None
    p_value: float | None
    detectable_pp: float | None
    tolerance_pp: float
    verdict: str  # PASS | UNDERPOWERED | WARN | FAIL | MISMATCH | NA
    note: str = ""
    method: str | None = None

    value = None  # a base row has no axes; the grid shows an axis like a cell
    higher_is_better = True

    @property
    def delta_pp(self) -> float | None:
        """An axis is already turned so that + is better: its delta is its gain."""
        return self.gain_pp

    def detail(self) -> str:
        if self.verdict not in COMPARED:
            return f"axis {self.axis} · {self.verdict}" + (f": {self.note}" if self.note else "")
        return (f"axis {self.axis} ({len(self.gates)} gates pooled) {self.gain_pp:+.1f} pp, paired CI "
                f"[{self.ci_low_pp:+.1f}, {self.ci_high_pp:+.1f}], p={self.p_value:.3g}, n={self.n}, detectable drop "
                f"≥ {self.detectable_pp:.1f} pp, tolerance {self.tolerance_pp:g} pp → {self.verdict}")


@dataclass(frozen=True)
class DeltaRow:
    subject_id: str
    name: str
    kind: str
    step: int | None
    cells: dict[str, DeltaCell]
    style_gain_pp: float | None
    worst_regression_pp: float | None
    score: float | None
    verdict: str  # the worst cell or axis verdict (engine.vocab ranks); BASE for the base; NA
    decision: str | None  # the latest decision: accept | reject
    axes: dict[str, AxisCell] = dataclasses.field(default_factory=dict)
    axis_gains_pp: dict[str, float] = dataclasses.field(default_factory=dict)  # axis → mean gain of its gates
    gain_pp: float | None = None  # the score's gain term: Σ weight(axis) · mean gain(axis)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DeltaTable:
    experiment: str
    base_subject_id: str | None  # the subject every row is compared with
    gates: list[tuple[str, str]]  # (gate, axis), ordered by axis
    rows: list[DeltaRow]
    lam: float = 1.0
    tolerance_pp: float | None = None  # None: the config's per axis, else each gate's own
    against: str = "base"  # "base" or "reference"
    config: ExperimentConfig = dataclasses.field(default_factory=ExperimentConfig)

    def row(self, subject_id: str) -> DeltaRow:
        return next(r for r in self.rows if r.subject_id == subject_id)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- loading ----------------------------------------------------------------------------------------

def get_experiment(s, name: str) -> Experiment:
    exp = s.execute(select(Experiment).where(Experiment.name == name)).scalars().first()
    if exp is None:
        raise NotFound(f"experiment {name!r}: no such experiment (see `slayer runs`)")
    return exp


def resolve_subject(subjects: list[Subject], ref: str, experiment: str) -> Subject:
    """A subject by exact id, exact name, or unique id prefix."""
    for match in ([s for s in subjects if s.subject_id == ref], [s for s in subjects if s.name == ref],
                  [s for s in subjects if s.subject_id.startswith(ref)]):
        if len(match) == 1:
            return match[0]
        if len(match) > 1:
            raise SpecError(f"experiment {experiment!r}: subject {ref!r} is ambiguous "
                            f"({', '.join(sorted(m.subject_id for m in match))})")
    raise NotFound(f"experiment {experiment!r}: no subject {ref!r} (see `slayer deltas {experiment}`)")


# Light columns of a gate result: enough to pick pairs and show values; the per-item vectors are
# loaded only for pairs whose statistics are not cached yet.
_LIGHT = (GateResult.id, GateResult.subject_pk, GateResult.gate, GateResult.axis, GateResult.primary_metric,
          GateResult.higher_is_better, GateResult.tolerance_pp, GateResult.metrics, GateResult.n,
          GateResult.fingerprint_hash)


def _latest_results(s, exp_id: int) -> dict[int, dict[str, list]]:
    """subject pk → gate → results (light rows), newest first, one per fingerprint."""
    q = (select(*_LIGHT).join(Subject, GateResult.subject_pk == Subject.id)
         .where(Subject.experiment_id == exp_id).order_by(GateResult.created_ms.desc(), GateResult.id.desc()))
    out: dict[int, dict[str, list]] = {}
    for r in s.execute(q).all():
        per_gate = out.setdefault(r.subject_pk, {}).setdefault(r.gate, [])
        if all(x.fingerprint_hash != r.fingerprint_hash for x in per_gate):
            per_gate.append(r)
    return out


def _load(s, ids: set[int], *columns) -> dict[int, tuple]:
    """id → the given columns, for many gate results (in chunks, to stay under bind-parameter limits)."""
    out, ids = {}, sorted(ids)
    for i in range(0, len(ids), 500):
        for row in s.execute(select(GateResult.id, *columns).where(GateResult.id.in_(ids[i:i + 500]))).all():
            out[row[0]] = tuple(row[1:])
    return out


def _latest_decisions(s, exp_id: int) -> dict[int, str]:
    q = (select(Decision.subject_pk, Decision.verdict).join(Subject, Decision.subject_pk == Subject.id)
         .where(Subject.experiment_id == exp_id).order_by(Decision.created_ms, Decision.id))
    return {pk: v for pk, v in s.execute(q).all()}


# -- cells --------------------------------------------------------------------------------------------

def _value(r) -> float | None:
    v = r.metrics.get(r.primary_metric)
    return float(v) if isinstance(v, (int, float)) else None


def _fingerprint_diff(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k} {b.get(k)!s}≠{a.get(k)!s}" for k in keys[:3]) + (" …" if len(keys) > 3 else "")


# (store url, base result id, candidate result id) → PairedStats, or a note why they cannot be paired.
# Results are immutable once ingested, so the TUI can rebuild the table on every ingested event
# without redoing a bootstrap.
_STATS_CACHE: dict[tuple, stats.PairedStats | str] = {}


def _pick(base_results: list, results: list):
    """(base result, candidate result) with the same fingerprint, newest candidate first; else None."""
    by_fp = {b.fingerprint_hash: b for b in base_results}
    cand = next((r for r in results if r.fingerprint_hash in by_fp), None)
    return (by_fp[cand.fingerprint_hash], cand) if cand is not None else None


def _cell(url: str, gate: str, axis: str, base_results: list, results: list, is_base: bool,
          fingerprints: dict[int, tuple]) -> DeltaCell:
    ref = (results or base_results or [None])[0]
    common = dict(gate=gate, axis=axis)
    if ref is None:
        return DeltaCell(**common, metric="", higher_is_better=True, base_value=None, value=None, delta_pp=None,
                         ci_low_pp=None, ci_high_pp=None, p_value=None, n=None, detectable_pp=None,
                         tolerance_pp=DEFAULT_TOLERANCE_PP, verdict="NA", note="no result")
    common.update(metric=ref.primary_metric, higher_is_better=ref.higher_is_better, tolerance_pp=ref.tolerance_pp,
                  gate_tolerance_pp=ref.tolerance_pp, ci_low_pp=None, ci_high_pp=None, p_value=None,
                  detectable_pp=None)
    base_value = _value(base_results[0]) if base_results else None
    if is_base:
        return DeltaCell(**common, base_value=base_value, value=base_value, delta_pp=None, n=ref.n,
                         verdict="BASE", fingerprint_hash=ref.fingerprint_hash)
    if not results:
        return DeltaCell(**common, base_value=base_value, value=None, delta_pp=None, n=None, verdict="NA",
                         note="no result for this subject")
    if not base_results:
        return DeltaCell(**common, base_value=None, value=_value(ref), delta_pp=None, n=ref.n, verdict="NA",
                         note="no result for the base", fingerprint_hash=ref.fingerprint_hash)
    pair = _pick(base_results, results)
    if pair is None:
        return DeltaCell(**common, base_value=base_value, value=_value(ref), delta_pp=None, n=ref.n,
                         verdict="MISMATCH", fingerprint_hash=ref.fingerprint_hash,
                         note="fingerprint differs from the base: "
                              + _fingerprint_diff(fingerprints[base_results[0].id][0], fingerprints[ref.id][0]))
    base, cand = pair
    st = _STATS_CACHE[(url, base.id, cand.id)]
    if isinstance(st, str):
        return DeltaCell(**common, base_value=_value(base), value=_value(cand), delta_pp=None, n=cand.n,
                         verdict="MISMATCH", fingerprint_hash=cand.fingerprint_hash, note=st)
    k = 100.0 if st.proportion else 1.0
    common.update(ci_low_pp=st.ci_low * k, ci_high_pp=st.ci_high * k, p_value=st.p_value,
                  detectable_pp=st.detectable * k)
    delta_pp = st.delta * k
    return DeltaCell(**common, base_value=_value(base), value=_value(cand), delta_pp=delta_pp, n=st.n,
                     verdict="PASS", method=st.method, fingerprint_hash=cand.fingerprint_hash)  # judged in _judge_row


def gate_seed(gate: str) -> tuple[int, int]:
    """The bootstrap seed of a gate: fixed, so a table is reproducible, and different per gate, so the
    resampling of two gates is independent when an axis pools them."""
    return stats.SEED, zlib.crc32(gate.encode())


def _unpairable(base: tuple, cand: tuple) -> str | None:
    if not base[0] or not cand[0]:
        return "no per-item outcomes to pair (aggregates only)"
    if len(base[0]) != len(cand[0]):
        return f"per-item outcomes differ in length ({len(base[0])} vs {len(cand[0])})"
    return None


# (store url, axis, the pairs pooled) → the axis's pooled PairedStats, or a note why there is none.
_AXIS_CACHE: dict[tuple, stats.PairedStats | str] = {}


def _axis_key(url: str, axis: str, pairs: list[tuple]) -> tuple:
    return url, axis, tuple(sorted((b.id, c.id) for b, c in pairs))


def _batch(gate: str, f1: bool, base: tuple, cands: list[tuple]) -> stats.Batch:
    if f1:
        return stats.compare_f1(base[1], [c[1] for c in cands], cands[0][2], seed=gate_seed(gate))
    return stats.compare_many(base[0], [c[0] for c in cands], seed=gate_seed(gate))


def _pool_parts(url: str, pairs: list[tuple], boots: dict) -> list[tuple] | str:
    """What stats.pooled needs of one subject's axis — each paired gate with its sign (+1 when higher is
    better) and resampled deltas — or a note why it cannot be pooled."""
    compared = [(b, c, _STATS_CACHE[(url, b.id, c.id)]) for b, c in pairs if (b.id, c.id) in boots]
    if not compared:
        return "no gate of this axis could be paired"
    units = {"pp" if st.proportion else c.primary_metric for b, c, st in compared}
    if len(units) > 1:
        return f"its gates are in different units ({', '.join(sorted(units))}): not pooled"
    return [(1.0 if c.higher_is_better else -1.0, st, boots[(b.id, c.id)]) for b, c, st in compared]


def _fill_stats(s, url: str, groups: dict[tuple, list]) -> None:
    """Compute (and cache) the statistics of every (base, candidate) pair not cached yet, and every axis
    pool (subject × axis) not cached yet. One batch per gate, base result and method, so all candidates
    of a gate share one bootstrap (stats.compare_many); axis by axis, so only one axis's resampled
    deltas are in memory at a time."""
    todo = {(b.id, c.id): (b, c) for ps in groups.values() for b, c in ps if (url, b.id, c.id) not in _STATS_CACHE}
    pools = {k: ps for k, ps in groups.items() if _axis_key(url, k[1], ps) not in _AXIS_CACHE}
    need = dict(todo)
    for ps in pools.values():
        need.update({(b.id, c.id): (b, c) for b, c in ps})
    if not need:
        return
    vectors = _load(s, {r.id for pair in need.values() for r in pair}, GateResult.outcomes, GateResult.preds,
                    GateResult.golds)
    by_axis: dict[str, list[tuple]] = {}
    for pair in need.values():
        by_axis.setdefault(pair[1].axis, []).append(pair)
    for axis, axis_pairs in sorted(by_axis.items()):
        batches: dict[tuple, list] = {}
        for b, c in axis_pairs:
            note = _unpairable(vectors[b.id], vectors[c.id])
            if note:
                _STATS_CACHE[(url, b.id, c.id)] = note
                continue
            (_, bp, _), (_, cp, cg) = vectors[b.id], vectors[c.id]
            f1 = "f1" in c.primary_metric.lower() and bool(bp) and bool(cp) and bool(cg)
            batches.setdefault((c.gate, b.id, f1), []).append(c)
        boots = {}
        for (gate, base_id, f1), cands in batches.items():
            batch = _batch(gate, f1, vectors[base_id], [vectors[c.id] for c in cands])
            for c, st, boot in zip(cands, batch.stats, batch.boot):
                _STATS_CACHE.setdefault((url, base_id, c.id), st)  # a cached pair keeps the numbers it showed
                boots[(base_id, c.id)] = boot
        keys, groups_of_parts = [], []
        for (_, ax), ps in pools.items():
            if ax == axis:
                parts = _pool_parts(url, ps, boots)
                if isinstance(parts, str):
                    _AXIS_CACHE[_axis_key(url, axis, ps)] = parts
                else:
                    keys.append(_axis_key(url, axis, ps))
                    groups_of_parts.append(parts)
        if groups_of_parts:
            _AXIS_CACHE.update(zip(keys, stats.pooled(groups_of_parts)))


# -- scoring --------------------------------------------------------------------------------------

def _replace(obj, **changes):
    """dataclasses.replace without re-running __init__ (rescore does this for thousands of cells)."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__, **changes)
    return new


def _tolerance(axis: str, gate_tolerances: list[float], tolerance_pp: float | None,
               config: ExperimentConfig) -> float:
    """The tolerance that judges a cell (one gate's) or an axis (the strictest of its gates'): the one set for
    every gate, else the config's for the axis, else the gates' own."""
    if tolerance_pp is not None:
        return tolerance_pp
    return config.tolerance_pp.get(axis, min(gate_tolerances, default=DEFAULT_TOLERANCE_PP))


def _judge_cell(c: DeltaCell, tol: float) -> DeltaCell:
    v = (stats.verdict(c.delta_pp, c.p_value, tol, c.higher_is_better, c.detectable_pp)
         if c.verdict in COMPARED else c.verdict)
    return c if (v, tol) == (c.verdict, c.tolerance_pp) else _replace(c, verdict=v, tolerance_pp=tol)


def _judge_axis(a: AxisCell, tol: float) -> AxisCell:
    v = (stats.verdict(a.gain_pp, a.p_value, tol, True, a.detectable_pp)
         if a.verdict in COMPARED else a.verdict)
    return a if (v, tol) == (a.verdict, a.tolerance_pp) else _replace(a, verdict=v, tolerance_pp=tol)


def _row_verdict(row: DeltaRow) -> str:
    verdicts = [c.verdict for c in row.cells.values()] + [a.verdict for a in row.axes.values()]
    verdict = worst_verdict(verdicts) or "NA"
    return verdict if verdict in COMPARED or verdict == "MISMATCH" else "NA"


def _score(gain: float | None, worst: float | None, lam: float) -> float:
    return (gain or 0.0) - lam * max(0.0, worst or 0.0)


def _judge_row(row: DeltaRow, tolerance_pp: float | None, config: ExperimentConfig, lam: float) -> DeltaRow:
    """Verdicts of every cell and axis under the tolerance, then the gains and the score under the config."""
    cells = {g: _judge_cell(c, _tolerance(c.axis, [c.gate_tolerance_pp], tolerance_pp, config))
             for g, c in row.cells.items()}
    axes = {a: _judge_axis(x, _tolerance(a, [c.gate_tolerance_pp for c in cells.values() if c.axis == a],
                                         tolerance_pp, config)) for a, x in row.axes.items()}
    compared = [c for c in cells.values() if c.verdict in COMPARED]
    per_axis: dict[str, list[float]] = {}
    for c in compared:
        per_axis.setdefault(c.axis, []).append(c.gain_pp)
    gains = {a: sum(v) / len(v) for a, v in per_axis.items()}
    drops = [-c.gain_pp for c in compared if c.axis in GENERAL_AXES]
    worst = max(drops) if drops else None
    gain = sum(w * gains.get(a, 0.0) for a, w in config.weights.items()) if compared else None
    row = _replace(row, cells=cells, axes=axes, axis_gains_pp=gains, gain_pp=gain,
                   style_gain_pp=gains.get(STYLE_AXES[0]), worst_regression_pp=worst,
                   score=_score(gain, worst, lam) if compared else None)
    return _replace(row, verdict=_row_verdict(row))


def rescore(table: DeltaTable, lam: float | None = None, tolerance_pp: float | None = None) -> DeltaTable:
    """Re-rank for another λ / tolerance without touching the database or redoing any bootstrap.

    Gains and the worst regression do not depend on the tolerance, so a new λ only recomputes the
    scores (O(rows)); a new tolerance recomputes the verdicts from the stored estimates and p-values.
    λ None: the experiment config's."""
    lam = table.config.lam if lam is None else lam
    rows = []
    for row in table.rows:
        if row.verdict == "BASE":
            rows.append(row)
        elif tolerance_pp == table.tolerance_pp:
            rows.append(_replace(row, score=None if row.score is None else _score(row.gain_pp,
                                                                                  row.worst_regression_pp, lam)))
        else:
            rows.append(_judge_row(row, tolerance_pp, table.config, lam))
    return _replace(table, rows=rows, lam=lam, tolerance_pp=tolerance_pp)


def _axis_cell(url: str, axis: str, pairs: list[tuple], cells: list[DeltaCell]) -> AxisCell:
    """The pooled axis of one subject, before its verdict (_judge_axis gives it)."""
    st = _AXIS_CACHE[_axis_key(url, axis, pairs)] if pairs else None
    if not isinstance(st, stats.PairedStats):
        verdict = "MISMATCH" if any(c.verdict == "MISMATCH" for c in cells) else "NA"
        return AxisCell(axis, (), None, None, None, None, None, None, 0.5, verdict, st or "no gate compared")
    k = 100.0 if st.proportion else 1.0
    gates = tuple(sorted(c.gate for c in cells if c.verdict in COMPARED))
    return AxisCell(axis, gates, st.n, st.delta * k, st.ci_low * k,
                    st.ci_high * k, st.p_value, st.detectable * k, 0.5, "PASS", method=st.method)


def delta_table(store: Store, experiment: str, base: str | None = None, reference: str | None = None,
                tolerance_pp: float | None = None, lam: float | None = None,
                config: ExperimentConfig | None = None) -> DeltaTable:
    """Every subject of `experiment` vs the base on every gate, and on every axis (its gates pooled).

    `config` is the experiment's (store.experiment_config.load_experiment_config; default: the plan's
    objective, the gates' own tolerances); `lam` overrides its λ, `tolerance_pp` every tolerance.

    The base is `base` (id, prefix or name), else the experiment's base_subject, else its subject of
    kind "base". `reference` compares against that subject instead (the card's "vs references").
    Only results whose fingerprints match are compared; the newest result per (subject, gate,
    fingerprint) is used. Rows are in creation order (the compared-with subject first); rank them
    with `ranked`, `best` and `pareto_frontier`."""
    with store.session() as s:
        exp = get_experiment(s, experiment)
        subjects = list(s.execute(select(Subject).where(Subject.experiment_id == exp.id)
                                  .order_by(Subject.created_ms, Subject.id)).scalars())
        results = _latest_results(s, exp.id)
        decisions = _latest_decisions(s, exp.id)
        comparator = None
        if reference or base:
            comparator = resolve_subject(subjects, reference or base, experiment)
        elif exp.base_subject:
            comparator = next((x for x in subjects if x.subject_id == exp.base_subject), None)
        if comparator is None:
            comparator = next((x for x in subjects if x.kind == "base"), None)
        base_results = results.get(comparator.id, {}) if comparator else {}
        groups, unmatched = {}, set()  # (subject pk, axis) → its (base, candidate) pairs
        for pk, per_gate in results.items():
            for gate, rs in per_gate.items():
                if pk == getattr(comparator, "id", None) or not base_results.get(gate):
                    continue
                pair = _pick(base_results[gate], rs)
                if pair:
                    groups.setdefault((pk, pair[1].axis), []).append(pair)
                else:
                    unmatched |= {base_results[gate][0].id, rs[0].id}
        _fill_stats(s, store.url, groups)
        fingerprints = _load(s, unmatched, GateResult.fingerprint) if unmatched else {}
    gate_axis = {r.gate: r.axis for per in results.values() for rs in per.values() for r in rs}
    gates = sorted(gate_axis.items(), key=lambda ga: (*axis_order(ga[1]), ga[0]))
    config = config or ExperimentConfig()
    lam = config.lam if lam is None else lam
    axes = list(dict.fromkeys(a for _, a in gates))
    rows = []
    for subj in ([comparator] if comparator else []) + [x for x in subjects if x is not comparator]:
        is_base = subj is comparator
        cells = {g: _cell(store.url, g, a, base_results.get(g, []), results.get(subj.id, {}).get(g, []), is_base,
                          fingerprints) for g, a in gates}
        if comparator is None:
            cells = {g: _replace(c, verdict="NA", note="no base subject") for g, c in cells.items()}
        row = DeltaRow(subj.subject_id, subj.name, subj.kind, subj.step, cells, None, None, None,
                       "BASE" if is_base else "NA", decisions.get(subj.id))
        if not is_base:
            row = _replace(row, axes={a: _axis_cell(store.url, a, groups.get((subj.id, a), []),
                                                    [c for c in cells.values() if c.axis == a]) for a in axes})
            row = _judge_row(row, tolerance_pp, config, lam)
        rows.append(row)
    return DeltaTable(experiment, comparator.subject_id if comparator else None, gates, rows, lam, tolerance_pp,
                      "reference" if reference else "base", config)


def _candidates(table: DeltaTable) -> list[DeltaRow]:
    return [r for r in table.rows if r.verdict != "BASE" and r.score is not None]


def pareto_frontier(table: DeltaTable) -> list[DeltaRow]:
    """Rows no other row beats on both gain (the score's gain term, higher) and worst general regression
    (lower), sorted by gain, highest first. A missing gain or regression counts as 0. The best row under
    any λ is on this frontier.

    One sweep in order of falling gain: a row is on the frontier when its regression is below every
    regression of a row with more gain, and the lowest among rows with the same gain."""
    pts = sorted(((r.gain_pp or 0.0, r.worst_regression_pp or 0.0, r) for r in _candidates(table)),
                 key=lambda p: (-p[0], p[1]))
    front, below, i = [], float("inf"), 0
    while i < len(pts):
        j = i
        while j < len(pts) and pts[j][0] == pts[i][0]:
            j += 1
        lowest = pts[i][1]
        front += [r for _, w, r in pts[i:j] if w == lowest and w < below]
        below, i = min(below, lowest), j
    return front


def ranked(table: DeltaTable) -> list[DeltaRow]:
    """Candidates by score, best first; rows with a FAIL verdict go last."""
    return sorted(_candidates(table), key=lambda r: (r.verdict == "FAIL", -r.score))


def best(table: DeltaTable) -> DeltaRow | None:
    """The highest-scoring row without a FAIL verdict (under the table's λ and tolerance), else None."""
    top = ranked(table)
    return top[0] if top and top[0].verdict != "FAIL" else None
