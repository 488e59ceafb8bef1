"""What every mode screen shares: header, mode bar and footer around its body; reload when the store
changes (only while shown); worker failures become one error notification."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header
from textual.worker import Worker, WorkerState

from slayer_console.widgets.nav import NavBar


class WorkerErrors:
    """Mixin: a failed worker of this node becomes one error notification (errors name their fix)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(str(event.worker.error), title="error", severity="error", timeout=10)


class ModeScreen(WorkerErrors, Screen):
    """Base of the five mode screens. Subclasses set MODE, compose `body()` and implement `reload()`."""

    MODE = ""
    _key_state: list | None = None  # check_action results the footer last showed

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield NavBar(self.MODE)
        yield from self.body()
        yield Footer(compact=True)

    def body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.watch(self.app, "stamp", self._store_changed, init=False)

    def on_screen_resume(self) -> None:
        # After the frame: a loader's first store access imports SQLAlchemy and checks migrations,
        # which would otherwise hold the interpreter while the screen is first painted.
        self.call_after_refresh(self.reload)

    def _store_changed(self) -> None:
        if self.is_current:
            self.reload()

    def reload(self) -> None:
        """Start this screen's loader worker (it must never block the UI)."""

    def refresh_keys(self) -> None:
        """Refresh the footer only when a key's availability changed: the footer rebuilds itself on
        every refresh, which costs more than a whole redraw of the delta table."""
        from textual.actions import parse

        state = []
        for binding in self.BINDINGS:
            _, name, params = parse(binding.action)
            state.append(self.check_action(name, params))
        if state != self._key_state:
            self._key_state = state
            self.refresh_bindings()
