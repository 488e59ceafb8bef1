"""Store failures a user can meet are one line naming the URL (never its password), exit 2, and cheap checks
come before slow ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from conftest import free_port, new_postgres_database
from store import Store

ROOT = Path(__file__).resolve().parents[1]


def slayer(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLAYER_HOME": str(home)}
    env.pop("SLAYER_DB", None)
    return subprocess.run([sys.executable, "-m", "slayer_console", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def newer_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    store = Store.open(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d0099'"))
    store.close()
    return url


@pytest.mark.parametrize("case", ["not a database", "unreachable server", "newer schema"])
def test_a_store_that_cannot_be_used_is_one_line_without_the_password(case, home, tmp_path):
    if case == "not a database":
        path = tmp_path / "notes.db"
        path.write_text("these are my notes, not a database\n" * 100)
        url, expect = f"sqlite:///{path}", "not a database"
    elif case == "unreachable server":
        url, expect = f"postgresql://me:hunter2@127.0.0.1:{free_port()}/slayer", "cannot be reached"
    else:
        url, expect = newer_store(tmp_path), "newer than this slayer"
    before = Path(url.removeprefix("sqlite:///")).read_bytes() if url.startswith("sqlite") else None
    out = slayer("--db", url, "runs", home=home)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], out.stderr
    assert "hunter2" not in out.stderr and "Traceback" not in out.stderr
    if before is not None:
        assert Path(url.removeprefix("sqlite:///")).read_bytes() == before  # nothing written to it


def test_postgresql_urls_work_as_written_with_psycopg_3(postgres_server):
    assert postgres_server.startswith("postgresql://")  # no +driver: SQLAlchemy's default, psycopg 3
    store = Store.open(new_postgres_database(postgres_server))
    assert store.engine.dialect.driver == "psycopg"
    store.close()


def test_a_missing_model_path_is_reported_before_any_data_set_is_fetched(home, tmp_path):
    out = slayer("gate", "run", "--model", str(tmp_path / "no-such-model"), "--gate", "polish_psc",
                 "--out", str(tmp_path / "out"), home=home)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: subject 'no-such-model': model {tmp_path / 'no-such-model'} "
                                               "does not exist"]
    assert not (tmp_path / "out").exists()
