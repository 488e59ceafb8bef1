"""Shared fixtures: a fresh $SLAYER_HOME, the store on SQLite and on a real PostgreSQL (started here)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

# Tiny models run fastest on one thread, and two pytest workers on two cores must not oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty SLAYER_HOME for CLI and store tests."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("SLAYER_HOME", str(h))
    monkeypatch.delenv("SLAYER_DB", raising=False)
    return h


def missing_system_package(what: str, package: str) -> None:
    """Skip a test whose system package is missing; under CI (`.ci/run` exports CI=1, and installs them all)
    fail instead, so a broken install cannot pass as skipped tests."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed (apt-get install {package}); .ci/install.sh installs it")
    pytest.skip(f"{what} is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's packages); yields its base URL."""
    bindir = _pg_bin()
    if bindir is None:
        missing_system_package("PostgreSQL", "postgresql")
    data = Path(tempfile.mkdtemp(prefix="slayer-pg-"))
    port = free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-w", "-l", str(data / "log"),
                    "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"  # psycopg 3, as a user writes it
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


_db_counter = iter(range(10**6))


def new_postgres_database(base: str) -> str:
    """A new, empty database on the test PostgreSQL server `base`; its URL."""
    import psycopg

    name = f"t{os.getpid()}_{next(_db_counter)}_{int(time.time() * 1000) % 100000}"
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A fresh, empty store URL: an SQLite file, or a new database on the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'slayer.db'}"
    return new_postgres_database(request.getfixturevalue("postgres_server"))
