"""The database: one engine per process, SQLite (WAL) by default, PostgreSQL for several hosts."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("honk.db")

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x686F6E6B  # "honk": one process migrates at a time


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used; the message says what to check."""


class Database:
    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = _sqlite_engine(url) if self.is_sqlite else _postgres_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only connection that sees one consistent state of the database however many queries it makes,
        and holds no lock that would keep writers waiting: a deferred transaction on SQLite (WAL gives it a
        snapshot), REPEATABLE READ READ ONLY on PostgreSQL."""
        options: dict[str, Any] = ({"honk_deferred": True} if self.is_sqlite else
                                   {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn

    def now(self, session: Session) -> datetime:
        """The current UTC time, from the database itself on PostgreSQL so that workers on several hosts
        agree on lease expiry even when their clocks drift."""
        if self.is_sqlite:
            return datetime.now(UTC).replace(tzinfo=None)
        return session.execute(text("SELECT timezone('utc', clock_timestamp())")).scalar_one()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # any failure means "not answering"; healthz reports it
            return False

    def migrate(self) -> None:
        """Bring the schema to the newest migration. Safe to call from several processes at once."""
        database = self.url.database if self.is_sqlite and self.url.database not in (None, "", ":memory:") else None
        if database:
            Path(database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Jobs hold transcripts and code: the file is the owner's alone, created so from the first byte.
            os.close(os.open(database, os.O_CREAT | os.O_RDWR, 0o600))
            os.chmod(database, 0o600)
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except Exception as exc:
            raise DatabaseUnavailable(f"cannot prepare the database at {self.safe_url}: {_first_line(exc)}. "
                                      "Check HONK_DATABASE_URL and that the server is running.") from exc

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes, which is our case
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a deferred transaction that later upgrades to a writer gets
        # SQLITE_BUSY without waiting, while BEGIN IMMEDIATE waits politely on busy_timeout. Readers that never
        # write (`Database.snapshot`) begin deferred, so that they keep no writer waiting.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("honk_deferred") else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                         connect_args={"connect_timeout": 10})


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
