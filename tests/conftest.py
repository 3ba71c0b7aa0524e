"""Shared fixtures: databases (SQLite and the real PostgreSQL), settings, Honk state.

PostgreSQL tests use HONK_TEST_POSTGRES_URL (default: the local server on 127.0.0.1:5432). Where no server
answers they skip with the reason; with HONK_REQUIRE_POSTGRES=1 (set by .ci/run) they fail instead, so CI
can never pass by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from app.process import HonkState
from app.queue.db import Database
from app.settings import Settings, load_settings
from tests.support import SECRET, postgres_problem

pytest_plugins = ["tests.e2e", "tests.browser"]  # the end-to-end world; Chromium for the page tests

PG_URL = os.environ.get("HONK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    problem = postgres_problem(PG_URL)
    if problem:
        if os.environ.get("HONK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"HONK_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    return PG_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin = make_url(postgres_admin_url)
    name = f"honk_test_{uuid.uuid4().hex[:12]}"
    params = {"host": admin.host, "port": admin.port or 5432, "user": admin.username, "password": admin.password,
              "dbname": admin.database, "autocommit": True}
    with psycopg.connect(**params) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**params) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'honk.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Settings isolated from the developer's environment and .env, with test-friendly timings."""
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "HONK_", "ANTHROPIC_")) and name not in ("HONK_REQUIRE_POSTGRES",
                                                                              "HONK_TEST_POSTGRES_URL"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {"honk_data_dir": tmp_path / "data", "github_webhook_secret": SECRET,
                                     "honk_poll_seconds": 0.05, "honk_retry_base_seconds": 0.2}
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def state(make_settings: Callable[..., Settings], database_url: str) -> Iterator[HonkState]:
    honk = HonkState.create(make_settings(honk_database_url=database_url))
    honk.db.migrate()
    yield honk
    honk.db.dispose()
