"""Start llama.cpp's server (or llama-cpp-python's) on a GGUF file, wait until it answers, stop it.

The command line is one function so the llama-swap entry, the direct server and bench.serve run the
same flags: the shipped file and the base are measured under identical settings.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from engine.errors import SpecError
from engine.serve.config import ServerSettings

PY_SERVER = "llama_cpp.server"
GGUF_MAGIC = b"GGUF"


def check_gguf(path: Path | None, name: str) -> Path:
    """The file exists and starts with GGUF's magic bytes; otherwise one line naming the subject and the file."""
    if path is None:
        raise SpecError(f"subject {name!r}: no GGUF file (export it with an export.gguf job first)")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise SpecError(f"subject {name!r}: {path}: no such GGUF file") from None
    except (IsADirectoryError, PermissionError) as e:
        raise SpecError(f"subject {name!r}: {path}: cannot read ({e.__class__.__name__})") from None
    if magic != GGUF_MAGIC:
        raise SpecError(f"subject {name!r}: {path}: not a GGUF file (starts with {magic!r})")
    return path


def resolve_binary(settings: ServerSettings) -> str:
    """`llama-server`'s path, or PY_SERVER; one line when neither is installed."""
    if settings.binary == PY_SERVER:
        return PY_SERVER
    if settings.binary != "auto":
        found = shutil.which(settings.binary)
        if not found:
            raise SpecError(f"server.binary: {settings.binary!r} is not an executable on this box")
        return found
    found = shutil.which("llama-server")
    if found:
        return found
    try:
        import llama_cpp.server  # noqa: F401  (only whether it is installed)
    except ImportError:
        raise SpecError("no llama-server on PATH and no llama-cpp-python[server]: install llama.cpp or "
                        "`pip install 'llama-cpp-python[server]'`, or set server.binary") from None
    return PY_SERVER


def server_command(binary: str, settings: ServerSettings, file: Path, port: int | str,
                   alias: str | None = None) -> list[str]:
    """The argv serving `file` on `port` (an int, or llama-swap's "${PORT}")."""
    s = settings
    if binary == PY_SERVER:
        cmd = [sys.executable, "-m", PY_SERVER, "--model", str(file), "--host", s.host, "--port", str(port),
               "--n_ctx", str(s.ctx_size), "--n_gpu_layers", str(s.gpu_layers),
               # its default lets each new request cut off the one streaming: concurrent requests must queue
               "--interrupt_requests", "False"]
        cmd += ["--n_threads", str(s.threads)] if s.threads else []
        cmd += ["--model_alias", alias] if alias else []
    else:
        cmd = [binary, "--model", str(file), "--host", s.host, "--port", str(port), "--ctx-size", str(s.ctx_size),
               "--n-gpu-layers", str(s.gpu_layers), "--parallel", str(s.parallel)]
        cmd += ["--threads", str(s.threads)] if s.threads else []
        cmd += ["--alias", alias] if alias else []
    return cmd + list(s.extra_args)


def check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            raise SpecError(f"server.port: {host}:{port} is in use ({e.strerror})") from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def client_host(host: str) -> str:
    """Where a client on the same box reaches a server listening on `host`."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def wait_ready(url: str, proc: subprocess.Popen | None, timeout_s: float, log: Path | None = None) -> None:
    """Poll URL/models until it lists a model; fail when the process dies or the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5) as r:
                if json.loads(r.read()).get("data"):
                    return
        except (OSError, ValueError):
            pass
        where = f" (see {log})" if log else ""
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before answering{where}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer {url}/models within {timeout_s:g} s{where}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_server(settings: ServerSettings, file: Path, name: str, log: Path, port: int | None = None):
    """llama-server on `file` for the duration of the block; yields its API base URL (…/v1)."""
    binary = resolve_binary(settings)
    if port is None:
        port = settings.port
        check_port_free(settings.host, port)
    cmd = server_command(binary, settings, file, port, alias=name)
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://{client_host(settings.host)}:{port}/v1"
    try:
        wait_ready(url, proc, settings.start_timeout_s, log)
        yield url, proc, cmd
    finally:
        stop(proc)
