"""Named registries (job kinds, scorers): filled by decorators in modules imported on first use.

A name registered twice from two different places is an error at import time, not a silent overwrite that
makes one of them unreachable.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from engine.errors import SpecError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, modules: list[str]):
        self.what = what
        self.modules = modules  # imported, in order, the first time the registry is read
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._loaded = False

    def add(self, name: str, item: T, fn: Callable) -> None:
        """Register `item` under `name`; `fn` (the decorated function) says where it was defined."""
        origin = f"{fn.__module__}.{fn.__qualname__}"
        # the same definition again is a module imported a second time (e.g. after a failed import), not a clash
        if name in self._origins and self._origins[name] != origin:
            raise ValueError(f"{self.what} {name!r} is registered twice: {self._origins[name]} and {origin}")
        self._items[name] = item
        self._origins[name] = origin

    def _load(self) -> None:
        if not self._loaded:
            for module in self.modules:
                importlib.import_module(module)
            self._loaded = True

    def get(self, name: str, source: str) -> T:
        self._load()
        if name not in self._items:
            raise SpecError(f"{source}: unknown {self.what} {name!r} (known: {', '.join(sorted(self._items))})")
        return self._items[name]

    def all(self) -> list[T]:
        self._load()
        return [self._items[n] for n in sorted(self._items)]
