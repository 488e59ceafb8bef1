"""Command palette providers (Ctrl+P), one per domain: experiments, subjects, jobs, boxes. Each loads its
items off the UI thread when the palette opens and matches them fuzzily."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Callable

from textual.command import DiscoveryHit, Hit, Hits, Provider

Item = tuple[str, Callable[[], object], str]  # (text, command, help)


class ListProvider(Provider):
    """A provider over a list of items loaded once per palette opening by `load()` (run in a thread)."""

    def load(self) -> list[Item]:
        raise NotImplementedError

    async def startup(self) -> None:
        self.items = await asyncio.to_thread(self.load)

    async def discover(self) -> Hits:
        for text, command, help_text in self.items:
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self.items:
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)


class ExperimentsProvider(ListProvider):
    def load(self) -> list[Item]:
        from store.overview import experiment_summaries

        return [(f"experiment {e.name}", partial(self.app.open_deltas, e.name),
                 f"open its deltas · {e.subjects} subjects, {e.runs} runs")
                for e in experiment_summaries(self.app.store())]


class SubjectsProvider(ListProvider):
    def load(self) -> list[Item]:
        from store.overview import list_subjects

        return [(f"subject {s.name} ({s.experiment})", partial(self.app.open_deltas, s.experiment, s.subject_id),
                 f"{s.kind}{f' step {s.step}' if s.step is not None else ''} · its row in the delta table")
                for s in list_subjects(self.app.store())]


class JobsProvider(ListProvider):
    def load(self) -> list[Item]:
        from store.queries import list_runs

        items = [(f"launch {name}", partial(self.app.show_launch, name), kind.description)
                 for name, kind in sorted(self.app.job_kinds.items())]
        items += [(f"run {r.id}", partial(self.app.show_run, r.id), f"{r.kind} · {r.status} · {r.experiment or ''}")
                  for r in list_runs(self.app.store(), limit=200)]
        return items


class BoxesProvider(ListProvider):
    def load(self) -> list[Item]:
        from remotes.boxes import load_boxes

        return [(f"check box {name}", partial(self.app.show_box, name, True), f"{box.kind} · {box.address}")
                for name, box in load_boxes(self.app.settings.home).items()]
