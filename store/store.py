"""The Store: owns the SQLAlchemy engine, keeps the schema at Alembic head, hands out sessions.

SQLite gets WAL, a busy timeout and foreign keys; any other SQLAlchemy URL (PostgreSQL) works the same.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.errors import SpecError, UserError

MIGRATIONS = Path(__file__).parent / "migrations"


def now_ms() -> int:
    return int(time.time() * 1000)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # isolation_level=None lets us issue BEGIN IMMEDIATE ourselves (see Store.write).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


class StoreUnavailable(UserError):
    """The store cannot be used: not a database, locked, unreachable, refusing, or newer than this code."""


def shown_url(url: str) -> str:
    """The URL as a user may see it: without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (a URL SQLAlchemy cannot parse is shown as given, minus nothing secret)
        return url.split("@")[-1] if "@" in url else url


def _one_line(error: BaseException) -> str:
    """The driver's own first line (the part after SQLAlchemy's wrapper), without the SQL it ran."""
    inner = getattr(error, "orig", None) or error
    return (str(inner).strip().splitlines() or [type(inner).__name__])[0]


class Store:
    """One store = one database. Use `Store.open(url)`; `session()` commits or rolls back."""

    def __init__(self, engine: Engine, url: str):
        self.engine = engine
        self.url = url
        self.is_sqlite = engine.dialect.name == "sqlite"

    @classmethod
    def open(cls, url: str, upgrade: bool = True) -> "Store":
        """Open (and migrate) the store at `url`; any failure to reach or read it is one StoreUnavailable line
        naming the URL without its password."""
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

        if "://" not in url:
            url = f"sqlite:///{Path(url).expanduser()}"
        try:
            return cls._open(url, upgrade)
        except NoSuchModuleError as e:
            raise StoreUnavailable(f"{shown_url(url)}: no driver for this URL ({e})") from None
        except ModuleNotFoundError as e:
            hint = ": pip install 'slayer-console[postgres]'" if url.startswith("postgres") else ""
            raise StoreUnavailable(f"{shown_url(url)}: its driver {e.name} is not installed{hint}") from None
        except ArgumentError as e:
            raise StoreUnavailable(f"{shown_url(url)}: not a database URL ({_one_line(e)})") from None
        except SQLAlchemyError as e:
            text_ = _one_line(e)
            what = ("not a database" if "not a database" in text_ or "malformed" in text_
                    else "locked by another process past the 30 s timeout" if "locked" in text_
                    else "cannot be reached or refused the connection")
            raise StoreUnavailable(f"{shown_url(url)}: {what} ({text_})") from None

    @classmethod
    def _open(cls, url: str, upgrade: bool) -> "Store":
        kwargs = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["connect_args"] = {"connect_timeout": 10}
        engine = create_engine(url, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)

            @event.listens_for(engine, "begin")
            def _begin(conn):
                conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")

        store = cls(engine, url)
        store.check_schema(upgrade=upgrade)
        return store

    # -- schema -----------------------------------------------------------------------------------
    def revisions(self) -> tuple[str | None, str]:
        """(the database's revision, the code's head revision)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            head = ScriptDirectory.from_config(_alembic_config(conn)).get_current_head()
        return current, head

    def check_schema(self, upgrade: bool = True) -> None:
        current, head = self.revisions()
        if current == head:
            return
        if current is not None and not self.knows(current):
            raise StoreUnavailable(f"{shown_url(self.url)}: store schema {current} is newer than this slayer "
                                   f"(it knows up to {head}): upgrade slayer-console")
        with self.engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
        if current is None and tables - {"alembic_version"}:
            raise SpecError(f"{shown_url(self.url)}: tables exist but no schema revision; not a slayer store")
        if not upgrade:
            raise SpecError(f"{shown_url(self.url)}: store schema is at {current}, code needs {head}; run `slayer db upgrade`")
        if current is not None:
            self.backup(current)
        self.upgrade()

    def knows(self, revision: str) -> bool:
        """Whether this code's migrations contain `revision`."""
        from alembic.script import ScriptDirectory

        with self.engine.connect() as conn:
            scripts = ScriptDirectory.from_config(_alembic_config(conn))
        return any(r.revision == revision for r in scripts.walk_revisions())

    def backup(self, revision: str) -> Path | str | None:
        """Copy the store aside before migrating it: an SQLite file to slayer.db.bak-<revision>; on PostgreSQL
        every table into the schema slayer_backup_<revision> of the same database (no pg_dump needed)."""
        database = self.engine.url.database
        if self.engine.dialect.name == "postgresql":
            return self._backup_schema(revision)
        if not self.is_sqlite or database in (None, "", ":memory:"):
            return None
        dst = Path(database).with_name(f"{Path(database).name}.bak-{revision}")
        if not dst.exists():
            raw = self.engine.raw_connection()
            try:
                raw.cursor().execute("VACUUM INTO ?", (str(dst),))
            finally:
                raw.close()
        return dst

    def _backup_schema(self, revision: str) -> str:
        schema = f"slayer_backup_{revision}"
        with self.engine.begin() as conn:
            if schema in inspect(conn).get_schema_names():
                return schema
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            for table in inspect(conn).get_table_names():
                conn.execute(text(f'CREATE TABLE "{schema}"."{table}" AS TABLE public."{table}"'))
        return schema

    def upgrade(self, revision: str = "head") -> None:
        from alembic import command

        with self.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), revision)

    # -- sessions ---------------------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def _committing(session: Session) -> Iterator[Session]:
        with session as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def session(self):
        """A read or plain write session: commits on success, rolls back on error."""
        return self._committing(Session(self.engine, expire_on_commit=False))

    @contextmanager
    def write(self, lock_key: str | None = None) -> Iterator[Session]:
        """A write transaction for read-then-write sequences (ingest cursors). SQLite takes its write lock
        up front (BEGIN IMMEDIATE; the busy timeout makes writers queue, never "database is locked");
        PostgreSQL takes a transaction-scoped advisory lock on `lock_key`, so two writers of the same
        key run one after the other."""
        with self.engine.connect() as conn:
            conn.info["immediate"] = True
            try:
                with self._committing(Session(bind=conn, expire_on_commit=False)) as s:
                    if lock_key is not None and self.engine.dialect.name == "postgresql":
                        s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": lock_key})
                    yield s
            finally:
                conn.info.pop("immediate", None)

    def close(self) -> None:
        self.engine.dispose()
