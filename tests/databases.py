"""Which database the tests' CSMS uses: a SQLite file in the test folder, or a PostgreSQL database.

The state lives here, not in conftest.py: tests import conftest as ``tests.conftest`` while pytest loads it as
``conftest``, and two copies of the session's cluster would leave one running.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.resilience.postgres import PostgresCluster, postgres_available

__all__ = [
    "TEST_DATABASE",
    "as_utc",
    "database_url",
    "drop_test_databases",
    "fetch_rows",
    "new_postgres_database",
    "postgres_cluster",
    "postgres_url",
    "stop_postgres",
]

# "postgresql" runs every test that uses make_settings (the csms fixture too) on PostgreSQL.
TEST_DATABASE = os.environ.get("CSMS_TEST_DATABASE", "sqlite")
if TEST_DATABASE not in ("sqlite", "postgresql"):
    raise RuntimeError(f"CSMS_TEST_DATABASE={TEST_DATABASE!r}: use sqlite or postgresql")

_cluster: PostgresCluster | None = None
_databases: dict[Path, str] = {}  # a test folder's PostgreSQL database: a restart in the same folder finds it again
_extra: list[str] = []  # databases a test made for itself (kill runs: one per iteration)


def postgres_cluster() -> PostgresCluster:
    """The session's PostgreSQL cluster, started on first use (skips the test where PostgreSQL is not installed)."""
    global _cluster
    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (initdb/pg_ctl not on PATH)")
    if _cluster is None:
        cluster = PostgresCluster()
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        _cluster = cluster
    return _cluster


def postgres_url(tmp_path: Path, migrated: bool = True) -> str:
    """The PostgreSQL database of this test folder (created on first use, migrated from its template)."""
    if tmp_path not in _databases:
        _databases[tmp_path] = postgres_cluster().create_database(migrated=migrated)
    return _databases[tmp_path]


def new_postgres_database() -> str:
    """A fresh migrated PostgreSQL database of the session's cluster, dropped after the test."""
    url = postgres_cluster().create_database()
    _extra.append(url)
    return url


def database_url(tmp_path: Path) -> str:
    """The database a test's CSMS uses: a SQLite file in the test folder, or its PostgreSQL database."""
    if TEST_DATABASE == "postgresql":
        return postgres_url(tmp_path)
    return f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}"


def drop_test_databases() -> None:
    """Drop the PostgreSQL databases the finished test made (each is a copy of the template: megabytes apiece)."""
    if _cluster is not None:
        for url in [*_databases.values(), *_extra]:
            _cluster.drop_database(url)
    _databases.clear()
    _extra.clear()


def stop_postgres() -> None:
    """Stop the session's cluster, if one was started (end of the test session)."""
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None
        _databases.clear()


def fetch_rows(tmp_path: Path, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (named ``:params``) read straight from the test folder's database, past the server's code.

    Timestamps come back as SQLite's text or PostgreSQL's datetimes: compare them through :func:`as_utc`.
    """
    url = make_url(database_url(tmp_path))
    sync = url.set(drivername="sqlite" if url.get_backend_name() == "sqlite" else "postgresql+psycopg")
    engine = create_engine(sync)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def as_utc(value: str | datetime) -> datetime:
    """A stored timestamp (SQLite text without an offset, or a PostgreSQL datetime) as an aware UTC datetime."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
