"""`slayer` in a real terminal: tmux at 80×24 and 200×50, keys sent with send-keys, the screen read back
with capture-pane — the way an operator over SSH sees it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import missing_system_package
from tui_campaign import build_campaign
from tui_pilot import fresh_settings


@pytest.fixture(autouse=True)
def _tmux_installed():
    if shutil.which("tmux") is None:
        missing_system_package("tmux", "tmux")


class Tmux:
    """One detached tmux session on a private server socket."""

    def __init__(self, name: str, width: int, height: int, command: str, env: dict):
        self.base = ["tmux", "-L", name]
        # An explicit environment: something in the test process putenv()s COLUMNS/LINES (invisible in
        # os.environ), and a program that inherits them believes the terminal is 80×24.
        server_env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        subprocess.run([*self.base, "-f", "/dev/null", "new-session", "-d", "-s", name, "-x", str(width),
                        "-y", str(height), *[a for k, v in env.items() for a in ("-e", f"{k}={v}")], command],
                       check=True, env=server_env)

    def screen(self) -> str:
        out = subprocess.run([*self.base, "capture-pane", "-p"], capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", *keys], check=True)

    def wait_for(self, *texts: str, check=None, timeout: float = 60.0) -> str:
        """The screen once it shows every text (and `check(screen)` holds)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(t in screen for t in texts) and (check is None or check(screen)):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{texts} not on screen after {timeout:g} s:\n{screen}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return subprocess.run([*self.base, "has-session"], capture_output=True).returncode == 0

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def checkpoint_rows(screen: str) -> dict[str, str]:
    return {line.split()[0]: line for line in screen.splitlines() if line.strip().startswith("ckpt-")}


def slayer_command() -> str:
    found = shutil.which("slayer")
    return found if found else f"{sys.executable} -m slayer_console"


@pytest.mark.parametrize("width,height", [(80, 24), (200, 50)])
def test_slayer_in_tmux_shows_the_delta_table(tmp_path, width, height):
    settings = fresh_settings(tmp_path)
    build_campaign(settings.store())
    settings.store().close()
    env = {"SLAYER_HOME": str(settings.home), "TERM": "xterm-256color", "PATH": os.environ["PATH"]}
    tmux = Tmux(f"slayer-test-{os.getpid()}-{width}", width, height, slayer_command(), env)
    try:
        tmux.wait_for("Dashboard", "Verdicts")
        tmux.keys("5")
        screen = tmux.wait_for("Deltas vs base", "ckpt-2400", "★")
        rows = checkpoint_rows(screen)
        assert set(rows) == {"ckpt-800", "ckpt-1600", "ckpt-2400", "ckpt-3200"}
        assert "★" in rows["ckpt-2400"] and "-3.0▲" in rows["ckpt-2400"]
        if width < 120:
            assert "worst" in screen and "mbpp" not in screen  # axes collapsed to their worst cell
        else:
            assert "mbpp" in screen and "-15.0✗" in rows["ckpt-3200"]  # every gate its own column
        tmux.keys("+")
        # λ 2: ckpt-1600 (+5, no drop) overtakes ckpt-2400 (+9, −3 on mbpp) and takes the ★
        tmux.wait_for("λ 2", check=lambda screen: "★" in checkpoint_rows(screen)["ckpt-1600"])
        assert "★" not in checkpoint_rows(tmux.screen())["ckpt-2400"]
        tmux.keys("q")
        deadline = time.monotonic() + 20
        while tmux.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not tmux.alive()  # q quits and gives the terminal back
    finally:
        tmux.kill()
