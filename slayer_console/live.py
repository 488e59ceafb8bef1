"""The live side of the console, run from worker threads: one poll pass (ingest local running runs, a
change stamp of the store) and a cache of computed delta tables keyed on what they depend on.
The store's imports happen inside the functions, so importing this costs the first paint nothing."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple


class Stamp(NamedTuple):
    """Changes whenever something the console shows changes: the store's counts and boxes.toml."""

    counts: tuple
    boxes_mtime: float


def read_stamp(store, home: Path) -> Stamp:
    from store.overview import change_counts

    boxes = Path(home) / "boxes.toml"
    return Stamp(change_counts(store), boxes.stat().st_mtime if boxes.exists() else 0.0)


@dataclass
class PollResult:
    stamp: Stamp
    remote_active: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Poller:
    """One pass per call: ingest what local running runs wrote since the last pass, list remote
    running runs (the app follows them over SSH), read the change stamp."""

    def __init__(self, store, home: Path):
        self.store, self.home = store, Path(home)
        self._reported: set[str] = set()  # runs whose ingest error was shown once already

    def poll(self) -> PollResult:
        from engine.errors import SpecError
        from remotes.boxes import BoxError
        from remotes.drivers import driver_for
        from store.ingest import ingest_run_dir
        from store.overview import active_runs

        problems, remote, local = [], [], {}
        for run_id, box, run_dir in active_runs(self.store):
            if box not in local:
                try:
                    local[box] = driver_for(self.home, self.store, box).local
                except BoxError:
                    local[box] = False  # following it says what is wrong with the box, once
            if not local[box]:
                remote.append(run_id)
                continue
            if not run_dir or not (Path(run_dir) / "events.jsonl").is_file():
                continue
            try:
                ingest_run_dir(self.store, run_dir)
            except SpecError as e:
                if run_id not in self._reported:
                    self._reported.add(run_id)
                    problems.append(str(e))
        return PollResult(read_stamp(self.store, self.home), remote, problems)


class DeltaCache:
    """The last delta table per experiment, recomputed only when gate results, subjects, decisions or the
    experiment's config changed; λ and tolerance changes go through the cheap `rescore`. Thread-safe:
    concurrent loaders wait for one computation instead of repeating it. `configs` gives an experiment's
    config (Settings.experiment_config)."""

    def __init__(self, configs=None):
        self._lock = threading.Lock()
        self._tables: dict[str, tuple[tuple, object]] = {}
        self._configs = configs

    def table(self, store, experiment: str):
        from store.deltas import delta_table
        from store.overview import results_key

        with self._lock:
            config = self._configs(experiment) if self._configs else None
            key = (results_key(store), config)
            hit = self._tables.get(experiment)
            if hit is not None and hit[0] == key:
                return hit[1]
            table = delta_table(store, experiment, config=config)
            self._tables[experiment] = (key, table)
            return table

    def scored(self, store, experiment: str, lam: float, tolerance: float | None):
        """(the table re-scored under λ and tolerance, the best subject's id or None)."""
        from store.deltas import best, rescore

        table = rescore(self.table(store, experiment), lam, tolerance)
        top = best(table)
        return table, top.subject_id if top else None


def default_experiment(store) -> str | None:
    """The newest experiment that has subjects (what the console opens on)."""
    from store.overview import experiment_summaries

    return next((e.name for e in experiment_summaries(store) if e.subjects), None)
