"""Following a run in the terminal (`slayer run`, `runs attach`, `runs cancel`, the demo): a progress bar on
stderr drawn from the run's progress events, whatever box the run is on (remotes.drivers follows it)."""

from __future__ import annotations

import asyncio


def follow_with_bar(driver, run_id: str, quiet: bool = False) -> str:
    """Follow the run to its end through its box's driver; its final status."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=quiet, console=Console(stderr=True)) as bar:
        task = bar.add_task(run_id, total=None)

        def on_progress(view) -> None:
            if view.progress_total:
                bar.update(task, completed=view.progress_done or 0, total=view.progress_total,
                           description=f"{run_id} {view.status}")

        return asyncio.run(driver.follow(run_id, on_progress=on_progress, on_state=bar.console.print))
