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

LEVEL = {"none": 0, "user": 1, "full": 2, "bwrap": 2}[sandbox_mode()]
SEPARATE_USER = LEVEL >= 1 or os.geteuid() != 0  # RLIMIT_NPROC binds every user but root
PRINT_CWD = "import os, sys\nprint('cwd', os.getcwd(), file=sys.stderr, flush=True)\n"


NEEDS = {1: "a separate user (sandbox mode 'user', 'full' or 'bwrap')",
         2: "the namespaces (sandbox mode 'full' or 'bwrap')"}
MUST_PASS = "assert 1 + 1 == 2"


def hostile(level: int, code: str, name: str):
    """One hostile program as a test case: skipped, visibly and with the reason, where its barrier is absent."""
    marks = [pytest.mark.skipif(LEVEL < level, reason=f"needs {NEEDS.get(level)}; this machine's sandbox "
                                                      f"mode is {sandbox_mode()!r}")]
    return pytest.param(code, id=name, marks=marks)


def _fails_beside_a_passing_program(code: str):
    """The hostile program fails and a plain one run beside it passes: a sandbox that runs nothing fails this."""
    results = run_programs([code, MUST_PASS], workers=2)
    assert [r.passed for r in results] == [False, True], [r.stderr_tail for r in results]


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


ESCAPE = Path("/tmp") / f"slayer-escape-{uuid.uuid4().hex}"


@pytest.mark.parametrize("code", [
    hostile(0, "import os\nos.remove({sentinel!r})\n", "os.remove"),
    hostile(0, "import shutil\nshutil.rmtree({root!r})\n", "shutil.rmtree"),
    hostile(0, "import os\nos.system('touch /tmp/x')\n", "os.system"),
    hostile(1, "import posix\nposix.unlink({sentinel!r})\n", "posix.unlink"),
    hostile(1, "open({sentinel!r}, 'w').write('gone')\n", "overwrite"),
    hostile(1, "open({new!r}, 'w').write('new')\n", "create"),
    hostile(2, f"open({str(ESCAPE)!r}, 'w').write('escaped')\n", "world-writable-tmp"),  # /tmp is world-writable
])
def test_writing_or_deleting_outside_the_temp_dir_fails_and_changes_nothing(tmp_path, code):
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("keep me")
    before = _snapshot(tmp_path)
    _fails_beside_a_passing_program(code.format(sentinel=str(sentinel), root=str(tmp_path),
                                                new=str(tmp_path / "new.txt")))
    assert _snapshot(tmp_path) == before
    assert not ESCAPE.exists()


@pytest.mark.parametrize("code", [
    hostile(0, "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n", "socket"),
    hostile(0, "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2)\n", "urllib"),
    hostile(2, "import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n",
            "_socket"),
])
def test_socket_to_localhost_fails_and_connects_nowhere(code):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        _fails_beside_a_passing_program(code.format(port=server.getsockname()[1]))
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()


@pytest.mark.parametrize("code", [
    hostile(0, "import os\nos.kill(os.getppid(), 9)\n", "os.kill-parent"),
    hostile(0, "import os, signal\nos.killpg(os.getpgid(0), signal.SIGKILL)\n", "os.killpg"),
    hostile(1, "import posix\nposix.kill(posix.getppid(), 9)\n", "posix.kill-parent"),
    hostile(1, f"import posix\nposix.kill({os.getpid()}, 9)\n", "posix.kill-this-test"),
])
def test_killing_the_parent_fails_and_the_harness_survives(code):
    _fails_beside_a_passing_program(code)


DRIVER = """import json, sys
sys.path.insert(0, sys.argv[1])
from sandbox import run_programs, sandbox_mode
results = run_programs(json.loads(sys.argv[2]))
print(json.dumps({"mode": sandbox_mode(), "passed": [r.passed for r in results]}))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/python3").exists(),
                    reason="needs root (to become nobody) and a system python that nobody can run")
def test_as_an_ordinary_user_the_hostile_programs_still_fail():
    """The GB10 and rented boxes run jobs as an ordinary user: there bubblewrap is the barrier."""
    import json
    import shutil
    import socket
    import subprocess
    import tempfile

    import engine.gates.sandbox as sandbox

    where = Path(tempfile.mkdtemp(prefix="slayer-unprivileged-", dir="/tmp"))
    escape = Path("/tmp") / f"slayer-escape-{uuid.uuid4().hex}"
    try:
        where.chmod(0o755)
        shutil.copy(sandbox.__file__, where / "sandbox.py")
        (where / "drive.py").write_text(DRIVER)
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            hostile = [f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n",
                       "import posix\nposix.kill(posix.getppid(), 9)\n",
                       "import posix\nwhile True:\n    posix.fork()\n"]
            if shutil.which("bwrap"):
                hostile += [f"import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n",
                            f"open({str(escape)!r}, 'w').write('escaped')\n"]
            runuser = shutil.which("runuser", path="/usr/sbin:/usr/bin:/sbin:/bin")
            out = subprocess.run([runuser, "-u", "nobody", "--", "/usr/bin/python3", str(where / "drive.py"),
                                  str(where), json.dumps([*hostile, MUST_PASS])],
                                 capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
            server.setblocking(False)
            with pytest.raises(BlockingIOError):
                server.accept()
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["mode"] == ("bwrap" if shutil.which("bwrap") else "none")
        assert report["passed"] == [False] * len(hostile) + [True]
        assert not escape.exists()
    finally:
        shutil.rmtree(where, ignore_errors=True)
