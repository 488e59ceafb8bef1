"""Where the CLI and the TUI find their things: home dir, store URL, the opened store."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("slayer", appauthor=False))


@dataclass
class Settings:
    home: Path
    db_url: str | None = None
    _store: object | None = field(default=None, repr=False)

    @classmethod
    def create(cls, home: str | None = None, db_url: str | None = None) -> "Settings":
        home_path = Path(home) if home else (Path(os.environ["SLAYER_HOME"]) if os.environ.get("SLAYER_HOME") else default_home())
        return cls(home_path.expanduser(), db_url or os.environ.get("SLAYER_DB"))

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'slayer.db'}"

    def experiment_config(self, experiment: str):
        """The experiment's config, `experiments/NAME.toml` in the home (the plan's defaults when absent):
        the objective's weights and λ, the tolerance per axis (store.experiment_config)."""
        from store.experiment_config import load_experiment_config

        return load_experiment_config(self.home / "experiments" / f"{experiment}.toml")

    def store(self):
        """The store, opened (and upgraded) on first use."""
        if self._store is None:
            from store import Store

            self.home.mkdir(parents=True, exist_ok=True)
            self._store = Store.open(self.url)
        return self._store
