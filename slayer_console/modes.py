"""The console's screens, in one table: the digit that opens each, its name, its label and its class. The app's
modes and key bindings, the nav bar and the help screen all read it, so a new screen is a row here plus its
module under screens/."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    key: str
    name: str
    label: str
    screen: str  # "module:Class", imported when the app class is built

    def screen_class(self) -> type:
        module, attr = self.screen.split(":")
        return getattr(importlib.import_module(module), attr)


MODES = (
    Mode("1", "dashboard", "Dashboard", "slayer_console.screens.dashboard:DashboardScreen"),
    Mode("2", "boxes", "Boxes", "slayer_console.screens.boxes:BoxesScreen"),
    Mode("3", "jobs", "Jobs", "slayer_console.screens.jobs:JobsScreen"),
    Mode("4", "experiments", "Experiments", "slayer_console.screens.experiments:ExperimentsScreen"),
    Mode("5", "deltas", "Deltas", "slayer_console.screens.deltas:DeltasScreen"),
)
