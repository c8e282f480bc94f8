"""Shared fixtures: a real CSMS on 127.0.0.1 with a real SQLite file, and a tripwire for swallowed errors.

``CSMS_TEST_DATABASE=postgresql`` runs the same tests on PostgreSQL: :func:`make_settings` then gives each test
folder a fresh database of a throwaway cluster (started once per session, stopped at its end; see
benchmarks/resilience/postgres.py). Tests that read the SQLite file itself are marked ``sqlite_only``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from csms.config import Settings, load_settings
from csms.runtime.app import CentralSystem
from tests import databases
from tests.databases import database_url, drop_test_databases, postgres_cluster, stop_postgres
from tests.http_api import ADMIN_TOKEN


@pytest.fixture(autouse=True, scope="session")
def _stop_postgres() -> Iterator[None]:
    yield
    stop_postgres()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test once on SQLite and once on PostgreSQL (skipped where PostgreSQL is not installed), whatever
    CSMS_TEST_DATABASE says: for the durability tests CI must cover on both."""
    backend: str = request.param
    if backend == "postgresql":
        postgres_cluster()
    monkeypatch.setattr(databases, "TEST_DATABASE", backend)
    return backend


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    yield
    drop_test_databases()


@pytest.fixture(autouse=True)
def _sqlite_only(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("sqlite_only")
    if marker is not None and databases.TEST_DATABASE != "sqlite":
        pytest.skip(f"SQLite only: {marker.args[0] if marker.args else 'reads the SQLite file'}")


@pytest.fixture(autouse=True, scope="session")
def _logs_through_stdlib() -> None:
    """Route structlog into the logging module so caplog (and the tripwire) see every line."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(key_order=["event"]),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


@pytest.fixture(autouse=True)
def error_log_tripwire(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test whose logs show an ERROR (an unhandled exception, a task exception never retrieved)."""
    caplog.set_level(logging.INFO)
    yield
    if request.node.get_closest_marker("allow_error_logs"):
        return
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    if errors:
        pytest.fail("error logged during the test:\n" + "\n".join(r.getMessage()[:500] for r in errors))


def make_settings(tmp_path: Path, **sections: dict[str, object]) -> Settings:
    overrides: dict[str, object] = {
        "ocpp": {"host": "127.0.0.1", "port": 0, "call_timeout": 5, **sections.pop("ocpp", {})},
        "api": {"host": "127.0.0.1", "port": 0, "admin_token": ADMIN_TOKEN, **sections.pop("api", {})},
        "database": {"url": database_url(tmp_path), **sections.pop("database", {})},
        "stations": {"auto_register": True, "allow_unknown_tokens": True, **sections.pop("stations", {})},
    }
    overrides.update(sections)
    return load_settings(None, **overrides)


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    """The real central system, listening on free loopback ports, stopped cleanly after the test."""
    system = CentralSystem(make_settings(tmp_path))
    await system.start()
    try:
        yield system
    finally:
        await system.stop()
