"""A baseline table from the store: every subject's score per gate beside a reference's, and the paired Δ —
the shape of the leaderboard tables the plan compares against (`slayer deltas EXP --vs REFERENCE`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from store.deltas import delta_table
from store.store import Store


@dataclass(frozen=True)
class BaselineCell:
    value: float | None  # the subject's primary metric (×100 for proportions)
    delta: float | None  # vs the reference, pp (None for the reference itself or when not comparable)
    verdict: str


@dataclass(frozen=True)
class BaselineTable:
    experiment: str
    reference: str  # its name
    gates: list[tuple[str, str, str]]  # (gate, axis, metric)
    rows: list[tuple[str, str, dict[str, BaselineCell], float | None]]  # (name, kind, gate → cell, average)

    def as_dict(self) -> dict:
        return asdict(self)


def _pct(v: float | None, proportion: bool) -> float | None:
    return None if v is None else v * 100 if proportion else v


def baseline_table(store: Store, experiment: str, reference: str, axes: tuple[str, ...] = ()) -> BaselineTable:
    """Scores of every subject vs `reference` (id, prefix or name) on the gates of `axes` (default: all but
    latency); the average is over gates every row has, as the leaderboard averages."""
    table = delta_table(store, experiment, reference=reference)
    gates = [(g, a) for g, a in table.gates if (a in axes if axes else a != "latency")]
    ref_row = table.row(table.base_subject_id)
    metrics = {g: next((r.cells[g].metric for r in table.rows if r.cells[g].metric), "") for g, _ in gates}
    proportion = {g: all(0.0 <= x <= 1.0 for r in table.rows for x in [r.cells[g].value] if x is not None)
                  for g, _ in gates}
    rows = []
    for r in [ref_row] + [x for x in table.rows if x is not ref_row]:
        cells = {g: BaselineCell(_pct(r.cells[g].value, proportion[g]), r.cells[g].delta_pp, r.cells[g].verdict)
                 for g, _ in gates}
        values = [c.value for c in cells.values()]
        avg = sum(values) / len(values) if values and None not in values else None
        rows.append((r.name, r.kind, cells, avg))
    return BaselineTable(experiment, ref_row.name, [(g, a, metrics[g]) for g, a in gates], rows)
