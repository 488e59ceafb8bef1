"""Run untrusted generated programs (HumanEval/MBPP completions) and report pass/fail.

Each program runs in a fresh interpreter, in a new session, under rlimits, in its own temp dir, as
`nobody`, in private mount/network/IPC/PID namespaces with every other mount read-only, and behind
a guard that disables destructive os/shutil/subprocess/socket functions. Where bubblewrap (`bwrap`)
runs, it builds the namespaces, as root or as an ordinary user (then in a user namespace), which is
how the GB10 and rented boxes run jobs; elsewhere the hand-built namespaces need root. How much
applies depends on the machine: see `sandbox_mode()`. This file is also the child's entry point
(run as a script), so it imports only the standard library.
"""

from __future__ import annotations

import json
import math
import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SETUP_FAILED = 125  # exit code of a child that could not build its sandbox
WORKDIR_TMPFS = "size=64m,mode=700"
FILE_LIMIT_MB = 16
OPEN_FILES = 128

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x8000000, 0x20000000, 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
# Per-mount flags kept when remounting read-only (the kernel refuses to drop locked ones).
MOUNT_FLAGS = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048,
               "relatime": 1 << 21, "strictatime": 1 << 24}


@dataclass
class SandboxResult:
    passed: bool
    status: str  # passed | failed | timeout | killed | error
    returncode: int | None  # negative: killed by that signal
    stderr_tail: str
    elapsed_s: float


def run_program(code: str, timeout_s: float = 3.0, memory_mb: int = 512, cpu_s: int | None = None,
                max_procs: int = 16) -> SandboxResult:
    """Run `code` as a program; passed means it exited 0 within `timeout_s` seconds of wall time."""
    return _run(code, sandbox_mode(), timeout_s, memory_mb, cpu_s, max_procs)


def run_programs(codes, workers: int = 2, **limits) -> list[SandboxResult]:
    """Run several programs, `workers` at a time; results come back in the order of `codes`."""
    sandbox_mode()  # probe once, before the threads race to
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda code: run_program(code, **limits), codes))


MODES = {
    "bwrap": "bubblewrap: mount, network, IPC and PID namespaces, read-only root; nobody as root, "
             "a user namespace otherwise",
    "full": "root: nobody + mount/network/IPC/PID namespaces + read-only mounts",
    "user": "root without namespaces: nobody only, network blocked by the in-process guard alone",
    "none": "an ordinary user without bubblewrap: rlimits and the in-process guard only",
}


@cache
def sandbox_mode() -> str:
    """The strongest sandbox this machine runs (a key of MODES), probed once by running an empty program."""
    candidates = (["bwrap"] if shutil.which("bwrap") else []) + (["full", "user"] if os.geteuid() == 0 else [])
    for mode in candidates:
        if _run("", mode, 30.0, 256, None, 4).passed:
            return mode
    return "none"


def sandbox_description() -> str:
    """One line for `slayer gates` and `boxes check`: which sandbox code gates get here, and what it is."""
    mode = sandbox_mode()
    return f"{mode} ({MODES[mode]})"


def _run(code, mode, timeout_s, memory_mb, cpu_s, max_procs) -> SandboxResult:
    workdir = tempfile.mkdtemp(prefix="slayer-sandbox-")
    try:
        Path(workdir, "program.py").write_text(code, encoding="utf-8")
        separate = mode in ("full", "user") or (mode == "bwrap" and os.geteuid() == 0)
        uid, gid = _nobody() if separate else (os.getuid(), os.getgid())
        if separate:
            os.chown(workdir, uid, gid)
        # Without root, bwrap's init, our child and its supervisor run as the same user as the program.
        extra = 3 if mode == "bwrap" and not separate else 0
        cfg = {"workdir": workdir, "namespaces": mode == "full", "uid": uid, "gid": gid,
               "cpu_s": cpu_s or math.ceil(timeout_s) + 1, "memory_mb": memory_mb,
               "nproc": _count_processes(uid) + max_procs + extra}
        return _execute(cfg, timeout_s, _bwrap(workdir) if mode == "bwrap" else [])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _bwrap(workdir: str) -> list[str]:
    """bubblewrap's command line: everything read-only but the program's dir, fresh /dev and /proc, private
    mount, PID, network, IPC and UTS namespaces, gone with its parent. As root no user namespace: the
    program drops to `nobody` itself (a user RLIMIT_NPROC binds, which root is not). As an ordinary user,
    a user namespace too (that is what lets bwrap build the others without privileges)."""
    args = ["bwrap", "--ro-bind", "/", "/"]
    if os.geteuid() == 0:  # Python may live where nobody cannot reach (pyenv under /root): as in _isolate
        interpreter = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
        for closed, paths in _closed_python_dirs(interpreter).items():
            args += ["--perms", "0755", "--tmpfs", closed]
            for path in paths:  # the directories above each bound one must be enterable by nobody
                for parent in reversed(Path(path).relative_to(closed).parents[:-1]):
                    args += ["--perms", "0755", "--dir", str(Path(closed) / parent)]
                args += ["--ro-bind", path, path]
    args += ["--dev", "/dev", "--proc", "/proc", "--bind", workdir, workdir, "--chdir", workdir, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if os.geteuid() != 0:
        args += ["--unshare-user", "--uid", str(os.getuid()), "--gid", str(os.getgid())]
    return args + ["--"]


def _execute(cfg, timeout_s, wrapper: list[str]) -> SandboxResult:
    workdir = cfg["workdir"]
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryFile() as err:
        start = time.monotonic()
        try:
            proc = subprocess.Popen([*wrapper, sys.executable, "-I", __file__, json.dumps(cfg)], cwd=workdir,
                                    env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, start_new_session=True)
        except OSError as exc:
            return SandboxResult(False, "error", None, f"sandbox: cannot start: {exc}", 0.0)
        exited = _wait_unreaped(proc.pid, start + timeout_s)
        if not exited:  # the child kills its PID namespace and waits until it is empty
            os.kill(proc.pid, signal.SIGTERM)
            _wait_unreaped(proc.pid, time.monotonic() + 5.0)
        # The exited child stays a zombie until wait(), so its group id cannot have been reused.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        rc = proc.wait()
        if wrapper:  # bwrap's PID namespace dies with it, but asynchronously: wait until it is empty
            _reap_namespace(workdir, time.monotonic() + 5.0)
        elapsed = time.monotonic() - start
        err.seek(max(0, err.seek(0, os.SEEK_END) - 4000))
        tail = err.read().decode("utf-8", "replace")[-500:]
    if not exited:
        status = "timeout"
    elif rc == 0:
        status = "passed"
    elif rc < 0:
        status = "killed"
    elif rc == SETUP_FAILED and "sandbox:" in tail:
        status = "error"
    else:
        status = "failed"
    return SandboxResult(status == "passed", status, rc, tail, elapsed)


def _reap_namespace(workdir: str, deadline: float) -> None:
    """Kill what is left of a sandbox's processes (each one's command line names its unique workdir)."""
    marker = workdir.encode()
    while time.monotonic() < deadline:
        left = []
        for entry in os.scandir("/proc"):
            try:
                if entry.name.isdigit() and marker in Path(entry.path, "cmdline").read_bytes():
                    left.append(int(entry.name))
            except OSError:
                pass
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)


def _wait_unreaped(pid: int, deadline: float) -> bool:
    """Wait until `pid` exits or `deadline` passes, without reaping it."""
    delay = 0.001
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.01)
    return True


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def _count_processes(uid: int) -> int:
    """Tasks (processes and threads) owned by `uid`: RLIMIT_NPROC counts them all, per real user."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                pass
    return count


# ---- child side: everything below runs in the sandboxed process tree ----

def _child(cfg) -> None:
    """Outer process: build namespaces, fork a supervisor, mirror the program's fate in our own."""
    source = Path("program.py").read_text(encoding="utf-8")
    if cfg["namespaces"]:
        try:
            _isolate(cfg["workdir"], cfg["uid"], cfg["gid"], source)
        except OSError as exc:
            print(f"sandbox: setup failed: {exc}", file=sys.stderr)
            os._exit(SETUP_FAILED)
    read_end, write_end = os.pipe()
    supervisor = os.fork()  # pid 1 of the new PID namespace: when it exits, every process in it dies
    if supervisor == 0:
        os.close(read_end)
        program = os.fork()
        if program == 0:
            os.close(write_end)
            _run_source(cfg, source)
        os.write(write_end, str(os.waitpid(program, 0)[1]).encode())
        os._exit(0)
    os.close(write_end)
    # Waiting for a killed namespace init returns only once every process in it is gone.
    signal.signal(signal.SIGTERM, lambda *_: os.kill(supervisor, signal.SIGKILL))
    os.waitpid(supervisor, 0)
    report = os.read(read_end, 32)
    status = int(report) if report else signal.SIGKILL
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig != signal.SIGKILL:  # the only fatal signal whose handler cannot be (re)set
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _isolate(workdir: str, uid: int, gid: int, source: str) -> None:
    """Private mount/network/IPC/PID namespaces; all mounts read-only; a small tmpfs as workdir."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def call(result):
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def mount(source_, target, fstype, flags, data=None):
        enc = [None if s is None else s.encode() for s in (source_, target, fstype, data)]
        call(libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]))

    call(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID))
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Python may live where nobody cannot reach (pyenv or conda under /root): cover the closed
    # ancestor with an empty tmpfs and bind back only the interpreter's own directories.
    for closed, paths in _closed_python_dirs().items():
        fds = [os.open(path, os.O_PATH) for path in paths]
        mount("tmpfs", closed, "tmpfs", 0, "mode=755,size=1m")
        for path, fd in zip(paths, fds):
            os.makedirs(path, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            os.close(fd)
    for target, flags in _mounts():
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
    mount("tmpfs", workdir, "tmpfs", MOUNT_FLAGS["nosuid"] | MOUNT_FLAGS["nodev"],
          f"{WORKDIR_TMPFS},uid={uid},gid={gid}")
    os.chdir(workdir)  # re-enter: the old cwd is the directory now hidden under the tmpfs
    Path("program.py").write_text(source, encoding="utf-8")


def _closed_python_dirs(extra: list[str] = ()) -> dict[str, list[str]]:
    """sys.path directories (and `extra` ones) under an ancestor that others cannot enter, by topmost such
    ancestor."""
    paths = {os.path.realpath(p) for p in [*sys.path, *extra] if p and os.path.isdir(p)}
    closed: dict[str, list[str]] = {}
    for path in sorted(p for p in paths if not any(p.startswith(q + os.sep) for q in paths)):
        shut = [a for a in reversed(Path(path).parents) if not os.stat(a).st_mode & 0o001]
        if shut:
            closed.setdefault(str(shut[0]), []).append(path)
    return closed


def _mounts():
    """(mount point, flags to keep) for every mount visible to this process."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])  # \040 = space
        yield target, sum(MOUNT_FLAGS.get(opt, 0) for opt in fields[5].split(","))


def _run_source(cfg, source: str) -> None:
    """The program's own process: limits, drop to the sandbox user, guard, run, exit."""
    import traceback
    import types

    exit_now = os._exit
    mib = 1024 * 1024
    for limit, value in ((resource.RLIMIT_CPU, (cfg["cpu_s"], cfg["cpu_s"] + 1)),
                         (resource.RLIMIT_AS, (cfg["memory_mb"] * mib,) * 2),
                         (resource.RLIMIT_NPROC, (cfg["nproc"],) * 2),
                         (resource.RLIMIT_FSIZE, (FILE_LIMIT_MB * mib,) * 2),
                         (resource.RLIMIT_NOFILE, (OPEN_FILES,) * 2),
                         (resource.RLIMIT_CORE, (0, 0))):
        resource.setrlimit(limit, value)
    if os.getuid() == 0:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
    os.umask(0o077)
    _guard()
    main = types.ModuleType("__main__")
    main.__file__ = "program.py"
    sys.modules["__main__"] = main
    sys.argv = ["program.py"]
    code = 0
    try:
        exec(compile(source, "program.py", "exec"), main.__dict__)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        exit_now(code)


def _guard() -> None:
    """Defence in depth, as in the published harnesses: destructive calls raise PermissionError.
    Easily bypassed (posix, _socket, ctypes); the barriers are the user, mounts and namespaces."""
    import socket

    def refuse(name):
        def refused(*args, **kwargs):
            raise PermissionError(f"{name} is disabled in the sandbox")
        return refused

    os_names = ["kill", "killpg", "system", "popen", "fork", "forkpty", "setsid", "setpgid",
                "remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace",
                "truncate", "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown", "chroot",
                "setuid", "setgid", "putenv", "unsetenv"]
    os_names += [n for n in dir(os) if n.startswith(("exec", "spawn", "posix_spawn"))]
    for module, names in ((os, os_names), (shutil, ["rmtree", "move", "chown"]),
                          (subprocess, ["Popen"]),
                          (socket, ["socket", "socketpair", "fromfd", "create_connection",
                                    "create_server"])):
        for name in names:
            if hasattr(module, name):
                setattr(module, name, refuse(f"{module.__name__}.{name}"))


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
