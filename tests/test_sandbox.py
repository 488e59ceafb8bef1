"""The code_exec sandbox: hostile completions end as failed samples, change nothing, and the run goes on.

Programs that reach past the in-process guard (posix, _socket) are only run where the real barrier
behind them exists: a separate user (sandbox_mode "user" or "full") or the namespaces ("full").
"""

import os
import re
import uuid
from pathlib import Path

import pytest

from engine.gates.sandbox import run_program, run_programs, sandbox_mode

LEVEL = {"none": 0, "user": 1, "full": 2}[sandbox_mode()]
SEPARATE_USER = LEVEL >= 1 or os.geteuid() != 0  # RLIMIT_NPROC binds every user but root
PRINT_CWD = "import os, sys\nprint('cwd', os.getcwd(), file=sys.stderr, flush=True)\n"


def _allowed(programs):
    """The programs whose barrier this machine has: (min level, code) pairs."""
    return [code for level, code in programs if level <= LEVEL]


def _cwd_of(result) -> str:
    return re.search(r"cwd (\S+)", result.stderr_tail).group(1)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(entry.name)
        except OSError:
            pass
    return found


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


def test_correct_program_passes_and_its_temp_dir_is_removed():
    result = run_program(PRINT_CWD + "def add(a, b):\n    return a + b\nassert add(2, 3) == 5\n")
    assert result.passed and result.status == "passed" and result.returncode == 0
    assert not Path(_cwd_of(result)).exists()


def test_assertion_failure_fails_with_its_traceback():
    result = run_program("def add(a, b):\n    return a - b\nassert add(2, 3) == 5\n")
    assert not result.passed and result.status == "failed"
    assert "AssertionError" in result.stderr_tail


def test_infinite_loop_times_out_and_the_next_program_still_runs():
    result = run_program(PRINT_CWD + "while True:\n    pass\n", timeout_s=1.0)
    assert result.status == "timeout" and not result.passed
    assert not _processes_mentioning(_cwd_of(result))
    assert run_program("assert True").passed


def test_ten_gigabyte_allocation_fails():
    result = run_program("data = bytearray(10 * 1024 ** 3)\n")
    assert not result.passed and "MemoryError" in result.stderr_tail


@pytest.mark.skipif(not SEPARATE_USER, reason="sandbox runs as root here: RLIMIT_NPROC is not enforced")
def test_fork_bomb_is_bounded_and_cleaned_up():
    # First a bounded loop of sleeping children: proves the process limit holds before the bomb.
    bounded = run_program(
        "import posix, sys, time\nok = 0\nfor _ in range(40):\n    try:\n        pid = posix.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(30)\n"
        "        posix._exit(0)\n    ok += 1\nprint('forked', ok, file=sys.stderr)\n",
        timeout_s=5.0)
    assert int(re.search(r"forked (\d+)", bounded.stderr_tail).group(1)) < 40
    bomb = run_program(PRINT_CWD + "import posix\nwhile True:\n    try:\n        posix.fork()\n"
                       "    except OSError:\n        pass\n", timeout_s=2.0)
    assert not bomb.passed
    assert not _processes_mentioning(_cwd_of(bomb))
    assert run_program("assert sum(range(10)) == 45").passed


def test_writing_or_deleting_outside_the_temp_dir_fails_and_changes_nothing(tmp_path):
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("keep me")
    escape = Path("/tmp") / f"slayer-escape-{uuid.uuid4().hex}"
    before = _snapshot(tmp_path)
    hostile = [
        (0, f"import os\nos.remove({str(sentinel)!r})\n"),
        (0, f"import shutil\nshutil.rmtree({str(tmp_path)!r})\n"),
        (0, "import os\nos.system('touch /tmp/x')\n"),
        (1, f"import posix\nposix.unlink({str(sentinel)!r})\n"),
        (1, f"open({str(sentinel)!r}, 'w').write('gone')\n"),
        (1, f"open({str(tmp_path / 'new.txt')!r}, 'w').write('new')\n"),
        (2, f"open({str(escape)!r}, 'w').write('escaped')\n"),  # /tmp is world-writable
    ]
    results = run_programs(_allowed(hostile) + ["assert 1 + 1 == 2"], workers=2)
    assert [r.passed for r in results] == [False] * len(_allowed(hostile)) + [True]
    assert _snapshot(tmp_path) == before
    assert not escape.exists()


def test_socket_to_localhost_fails_and_connects_nowhere():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        hostile = [
            (0, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"),
            (0, f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2)\n"),
            (2, f"import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n"),
        ]
        results = run_programs(_allowed(hostile))
        assert not any(r.passed for r in results)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()


def test_killing_the_parent_fails_and_the_harness_survives():
    hostile = [
        (0, "import os\nos.kill(os.getppid(), 9)\n"),
        (0, "import os, signal\nos.killpg(os.getpgid(0), signal.SIGKILL)\n"),
        (1, "import posix\nposix.kill(posix.getppid(), 9)\n"),
        (1, f"import posix\nposix.kill({os.getpid()}, 9)\n"),  # this test process
    ]
    results = run_programs(_allowed(hostile) + ["assert 2 * 2 == 4"])
    assert [r.passed for r in results] == [False] * len(_allowed(hostile)) + [True]
