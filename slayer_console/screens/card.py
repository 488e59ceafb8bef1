"""Model-card preview (rendered from the store by store.card under the current λ and tolerance) and
export to a Markdown file."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Markdown

from slayer_console.screens.base import WorkerErrors
from slayer_console.screens.path_dialog import PathDialog


def card_text(app, experiment: str, subject: str | None) -> str:
    from store.card import render_card

    return render_card(app.store(), experiment, subject, lam=app.lam, tolerance_pp=app.tolerance, config=app.objective)


def preview_markdown(card: str) -> str:
    """The card for the Markdown widget: the prose first, the YAML front matter after it as a code block."""
    if card.startswith("---\n"):
        end = card.find("\n---", 4)
        if end > 0:
            return card[end + 4:] + f"\n\n## Front matter (Hugging Face)\n\n```yaml\n{card[4:end]}\n```\n"
    return card


def export_card(screen: Screen, experiment: str, subject: str | None) -> None:
    """Ask where, then render and write the card from a worker of `screen`."""
    app = screen.app

    def save(path: str | None) -> None:
        if not path:
            return

        def job() -> None:
            from store.card import write_card_files

            written, appendix = write_card_files(app.store(), experiment, Path(path).expanduser(), subject,
                                                 lam=app.lam, tolerance_pp=app.tolerance, config=app.objective)
            app.call_from_thread(app.notify, f"model card written to {written} (appendix: {appendix.name})")

        screen.run_worker(job, thread=True, group="card-export", exit_on_error=False)

    default = app.settings.home / "cards" / f"{experiment}.md"
    app.push_screen(PathDialog("Export the model card to", str(default)), save)


class CardScreen(WorkerErrors, ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="card-close"),
                Binding("e", "export", "Export", id="card-export")]

    def __init__(self, experiment: str, subject: str | None):
        super().__init__()
        self.experiment, self.subject = experiment, subject

    def compose(self) -> ComposeResult:
        yield Markdown("*rendering the model card…*", id="card")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.render_card()

    @work(thread=True, group="card", exclusive=True, exit_on_error=False)
    def render_card(self) -> None:
        text = card_text(self.app, self.experiment, self.subject)
        self.app.call_from_thread(self.query_one("#card", Markdown).update, preview_markdown(text))

    def action_export(self) -> None:
        export_card(self, self.experiment, self.subject)
