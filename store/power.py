"""Power per gate and per axis: how many paired items each needs before a drop of the tolerance is visible
(what `slayer gates --power` prints). From an assumed discordance rate ψ, or measured on an experiment's
delta table, where every compared cell's detectable drop d at n items scales as 1/√n: n · (d / tolerance)²."""

from __future__ import annotations

import math
import statistics

from store import stats


def _needed_from(cells, tolerance_pp: float) -> int | None:
    """The median over subjects of n · (detectable / tolerance)² (cells or axes with a detectable drop)."""
    needed = [math.ceil(c.n * (c.detectable_pp / tolerance_pp) ** 2) for c in cells if c.detectable_pp is not None]
    return math.ceil(statistics.median(needed)) if needed else None


def power_rows(gates, tolerance_pp: float, discordance: float, table=None) -> tuple[list[dict], list[dict]]:
    """(per gate, per axis) rows: n (None when the gate scores a whole split of unknown size), the items needed
    to see `tolerance_pp`, and whether n reaches it. `gates` are engine.gates specs; with a delta `table`, n
    and the needs come from its compared cells and pooled axes, else from ψ = `discordance` (0/1 outcomes)."""
    rows_by_axis: dict[str, list[dict]] = {}
    measured = [r for r in (table.rows if table else []) if r.axes]
    for g in gates:
        cells = [r.cells[g.name] for r in measured if g.name in r.cells and r.cells[g.name].detectable_pp is not None]
        if cells:
            n, needed, source = max(c.n for c in cells), _needed_from(cells, tolerance_pp), "measured"
        else:
            n, source = g.n or None, f"ψ = {discordance:g}"
            needed = None if g.scorer == "grammar" else stats.items_needed(tolerance_pp / 100, discordance)
        rows_by_axis.setdefault(g.axis, []).append(
            {"gate": g.name, "axis": g.axis, "n": n, "needed": needed, "source": source,
             "enough": None if n is None or needed is None else n >= needed})
    axes = []
    for axis, rows in rows_by_axis.items():
        pooled = [r.axes[axis] for r in measured if axis in r.axes and r.axes[axis].detectable_pp is not None]
        sizes = [r["n"] for r in rows]
        n = sum(sizes) if all(sizes) else None
        if pooled:
            n, needed, source = max(a.n for a in pooled), _needed_from(pooled, tolerance_pp), "measured"
        else:
            needs = [r["needed"] for r in rows if r["needed"] is not None]
            needed, source = (max(needs) if needs else None), f"ψ = {discordance:g}"
        axes.append({"axis": axis, "gates": [r["gate"] for r in rows], "n": n, "needed": needed, "source": source,
                     "enough": None if n is None or needed is None else n >= needed})
    return [r for rows in rows_by_axis.values() for r in rows], axes
