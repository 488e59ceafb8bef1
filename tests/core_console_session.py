"""A Pilot session of the console for tests/test_core_install.py, run by the Python of a core-only install
(no pytest there): every mode screen, accept and reject on the delta table, the Pareto plot, card preview
and export, help, a local job launched from the Jobs screen, and a training launch refused with the extra
to install.

    python tests/core_console_session.py HOME     # HOME holds the campaign store (experiment slayer-v2)

Exits non-zero naming the step that did not happen.
"""

from __future__ import annotations

import asyncio
import sys
import time

from slayer_console.app import make_app
from slayer_console.context import Settings

ML = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "llama_cpp")


async def until(pilot, predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"core console session: timed out waiting for {what}")
        await pilot.pause(0.05)
    return value


async def on_screen(pilot, name: str) -> None:
    await until(pilot, lambda: pilot.app.screen.__class__.__name__ == name, name)


async def decide(pilot, name: str, key: str, reason: str) -> None:
    app = pilot.app
    await pilot.press("g")
    for _ in range(app.screen.grid.row_count):
        if app.screen.grid.focused()[0].name == name:
            break
        await pilot.press("j")
    await pilot.press(key)
    await on_screen(pilot, "DecideDialog")
    await pilot.press(*reason, "enter")
    await on_screen(pilot, "DeltasScreen")


def notified(app, text: str) -> bool:
    return any(text in str(n.message) for n in app._notifications)


async def launch(pilot, kind: str, edit=lambda text: text) -> None:
    app = pilot.app
    await pilot.press("3", "n")
    await on_screen(pilot, "LaunchDialog")
    app.screen.query_one("#spec").load_text(edit(app.job_kinds[kind].example))
    await pilot.press("ctrl+s")
    await on_screen(pilot, "JobsScreen")


async def main(home: str) -> None:
    settings = Settings.create(home)
    app = make_app(settings, poll_s=0.2)
    async with app.run_test(size=(160, 45)) as pilot:
        await on_screen(pilot, "DashboardScreen")
        await pilot.press("2", "n")
        await on_screen(pilot, "BoxForm")
        await pilot.press("escape")
        for key, screen in zip("12345", ("DashboardScreen", "BoxesScreen", "JobsScreen", "ExperimentsScreen",
                                         "DeltasScreen")):
            await pilot.press(key)
            await on_screen(pilot, screen)
        await until(pilot, lambda: app.screen.grid.row_count, "the delta table's rows")
        await decide(pilot, "ckpt-1600", "a", "gain")
        await decide(pilot, "ckpt-3200", "r", "mbpp")
        await pilot.press("p")
        await on_screen(pilot, "ParetoScreen")
        await pilot.press("escape", "c")
        await on_screen(pilot, "CardScreen")
        await pilot.press("escape", "e")
        await on_screen(pilot, "PathDialog")
        await pilot.press("enter")  # the default path: HOME/cards/EXPERIMENT.md
        await until(pilot, (settings.home / "cards" / "slayer-v2.md").exists, "the exported card")
        await pilot.press("f1")
        await on_screen(pilot, "HelpScreen")
        await pilot.press("escape")

        await until(pilot, lambda: app.job_kinds, "the job kinds")
        await launch(pilot, "train.sft")
        await until(pilot, lambda: notified(app, "pip install 'slayer-console[ml]'"), "the ml extra's hint")
        await launch(pilot, "debug.sleep", lambda text: text.replace("steps = 10 ", "steps = 3 "))
        from store.queries import list_runs

        await until(pilot, lambda: [r for r in list_runs(settings.store()) if r.kind == "debug.sleep"
                                    and r.status == "succeeded"], "the local debug.sleep run to succeed")
    loaded = [m for m in ML if m in sys.modules]
    if loaded:
        raise SystemExit(f"core console session: loaded {loaded}")
    print("core console session: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
