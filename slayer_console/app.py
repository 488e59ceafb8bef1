"""The console App: one mode per screen, the app-wide state (experiment, λ, tolerance), app keys and the
live poll that ingests local runs and tells screens when the store changed."""

from __future__ import annotations

import threading
import time

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive
from textual.worker import get_current_worker

from slayer_console import modes
from slayer_console.commands_palette import BoxesProvider, ExperimentsProvider, JobsProvider, SubjectsProvider
from slayer_console.live import DeltaCache, Poller, Stamp
from slayer_console.screens.base import WorkerErrors
from slayer_console.screens.help import HelpScreen
from slayer_console.screens.host_key import HostKeyDialog

# λ and tolerance move along ladders: re-ranking happens at values an operator would pick.
LAMBDAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
TOLERANCES = (None, 0.25, 0.5, 1.0, 2.0)  # None: each gate's own tolerance


def step_ladder(ladder: tuple, value, step: int):
    i = ladder.index(value) if value in ladder else 0
    return ladder[max(0, min(len(ladder) - 1, i + step))]


class SlayerApp(WorkerErrors, App):
    """slayer console."""

    CSS_PATH = "app.tcss"
    TITLE = "slayer"
    MODES = {m.name: m.screen_class() for m in modes.MODES}
    DEFAULT_MODE = "dashboard"
    COMMANDS = App.COMMANDS | {ExperimentsProvider, SubjectsProvider, JobsProvider, BoxesProvider}
    BINDINGS = [
        Binding("f1", "help", "Help", id="help"),
        *(Binding(m.key, f"switch_mode('{m.name}')", m.label, id=f"mode-{m.name}", show=False) for m in modes.MODES),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    experiment: reactive[str | None] = reactive(None)
    """The experiment the dashboard and the deltas screen show (None until one exists)."""
    lam: reactive[float] = reactive(1.0)
    """λ of the Pareto score: style gain − λ · worst general regression."""
    tolerance: reactive[float | None] = reactive(None)
    """Tolerance (pp) overriding every gate's own; None keeps each gate's."""
    stamp: reactive[Stamp | None] = reactive(None)
    """Changes whenever the store does; screens reload on it."""

    def __init__(self, settings, *, poll_s: float = 0.5, experiment: str | None = None, mode: str = "dashboard"):
        self.DEFAULT_MODE = mode  # the screen it opens on; App.__init__ starts in DEFAULT_MODE
        super().__init__()
        self.settings = settings
        self.poll_s = poll_s
        self.deltas = DeltaCache(settings.experiment_config)
        self.box_reports: dict[str, object] = {}  # box name → last BoxReport of `check`
        self.job_kinds: dict[str, object] = {}  # job kind name → engine.jobs.JobKind (loaded in a worker)
        self.box_names: list[str] = ["local"]
        self._store_lock = threading.Lock()
        self._following: set[str] = set()  # remote runs ever followed: the poll never restarts a follow
        self.set_reactive(SlayerApp.experiment, experiment)

    def store(self):
        """The store, opened on first use (from a worker thread: opening may migrate)."""
        with self._store_lock:
            return self.settings.store()

    def on_mount(self) -> None:
        self._update_subtitle()
        # After the first frame: opening the store imports SQLAlchemy and checks migrations, which
        # would otherwise compete with the first paint for the interpreter.
        self.call_after_refresh(self.poll_store)
        self.call_after_refresh(self.load_kinds)

    @work(thread=True, group="kinds", exit_on_error=False)
    def load_kinds(self) -> None:
        from engine.jobs import kinds

        found = {k.name: k for k in kinds()}
        self.call_from_thread(setattr, self, "job_kinds", found)

    # -- live -------------------------------------------------------------------------------------
    @work(thread=True, group="poll", exclusive=True, exit_on_error=False)
    def poll_store(self) -> None:
        worker = get_current_worker()
        poller = Poller(self.store(), self.settings.home)
        while not worker.is_cancelled:
            result = poller.poll()
            for problem in result.problems:
                self.call_from_thread(self.notify, problem, severity="error", timeout=10)
            for run_id in result.remote_active:
                if run_id not in self._following:
                    self.call_from_thread(self.follow_remote, run_id)
            if result.stamp != self.stamp:
                if self.stamp is None or result.stamp.boxes_mtime != self.stamp.boxes_mtime:
                    self._read_box_names()
                self.call_from_thread(setattr, self, "stamp", result.stamp)
            time.sleep(self.poll_s)

    def _read_box_names(self) -> None:
        from remotes.boxes import BoxError, load_boxes

        try:
            self.box_names = list(load_boxes(self.settings.home))
        except BoxError as e:
            self.call_from_thread(self.notify, str(e), severity="error", timeout=10)

    def follow_remote(self, run_id: str) -> None:
        """Follow a run through its box's driver until it ends (an SSH box: reconnecting as needed; a run that
        gates by fan-out: its checkpoints' gate jobs too); ingest lands in the store. A follow that fails (box
        gone from boxes.toml…) says so once; `a` on the run tries again."""
        self._following.add(run_id)

        async def follow() -> str:
            import asyncio

            from remotes.drivers import driver_for
            from store.queries import get_run

            store = self.store()
            box = (await asyncio.to_thread(get_run, store, run_id)).box
            driver = await asyncio.to_thread(driver_for, self.settings.home, store, box)
            return await driver.follow(run_id, confirm=self.confirm_host_key)

        self.run_worker(follow(), name=run_id, group=f"follow-{run_id}", exclusive=True, exit_on_error=False)

    async def confirm_host_key(self, box, where: str, algorithm: str, fingerprint: str) -> bool:
        """HostKeyConfirm for remotes: ask the operator (from an async worker)."""
        return bool(await self.push_screen_wait(HostKeyDialog(box.name, where, algorithm, fingerprint)))

    # -- state ------------------------------------------------------------------------------------
    def watch_experiment(self) -> None:
        if self.experiment:
            self.lam = self.objective.lam  # each experiment opens at its config's λ
        self._update_subtitle()

    def watch_lam(self) -> None:
        self._update_subtitle()

    def watch_tolerance(self) -> None:
        self._update_subtitle()

    def _update_subtitle(self) -> None:
        tol = "gate tol" if self.tolerance is None else f"tol {self.tolerance:g}pp"
        score = f" · score = {self.objective.formula(self.lam)}" if self.experiment else ""
        self.sub_title = f"experiment: {self.experiment or '—'} · λ {self.lam:g} · {tol}{score}"

    @property
    def objective(self):
        """The experiment's config (its objective is in the header); a bad file is an error toast, and the
        plan's defaults are used meanwhile."""
        from engine.errors import SpecError
        from store.experiment_config import ExperimentConfig

        try:
            return self.settings.experiment_config(self.experiment)
        except SpecError as e:
            self.notify(str(e), severity="error", timeout=10)
            return ExperimentConfig()

    def change_lambda(self, step: int) -> None:
        self.lam = step_ladder(LAMBDAS, self.lam, step)

    def change_tolerance(self, step: int) -> None:
        self.tolerance = step_ladder(TOLERANCES, self.tolerance, step)

    # -- navigation (the command palette and screens use these) -----------------------------------
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def open_deltas(self, experiment: str, subject_id: str | None = None) -> None:
        self.experiment = experiment
        self.switch_mode("deltas")
        if subject_id:
            self.screen.focus_subject(subject_id)

    def show_run(self, run_id: str) -> None:
        self.switch_mode("jobs")
        self.screen.focus_run(run_id)

    def show_launch(self, kind: str | None = None) -> None:
        self.switch_mode("jobs")
        self.screen.action_launch(kind)

    def show_box(self, name: str, check: bool = False) -> None:
        self.switch_mode("boxes")
        self.screen.focus_box(name, check=check)


def make_app(settings, *, poll_s: float = 0.5, experiment: str | None = None, mode: str = "dashboard") -> SlayerApp:
    """The one factory the CLI, the tests and the benchmark use; `mode` is the screen it opens on."""
    return SlayerApp(settings, poll_s=poll_s, experiment=experiment, mode=mode)
