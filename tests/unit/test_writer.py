"""The group-commit writer against a real SQLite file and a real PostgreSQL database (where installed): batching,
isolation of a bad write, durability."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.domain.stations import RegistrationStatus, StationInfo
from csms.errors import StorageError
from csms.storage import sql
from csms.storage.engine import create_engine, create_writer_engine, migrate
from csms.storage.sql import SqlStorage
from csms.storage.tables import stations
from csms.storage.writer import GroupCommitWriter, Write
from tests.databases import database_url

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(tmp_path: Path, any_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url(tmp_path))
    await migrate(engine)
    yield engine
    await engine.dispose()


async def open_storage(engine: AsyncEngine) -> tuple[SqlStorage, GroupCommitWriter]:
    writer = GroupCommitWriter(create_writer_engine(str(engine.url)))
    writer.start()
    return SqlStorage(engine, writer), writer


async def test_concurrent_writes_share_commits_and_all_land(engine: AsyncEngine) -> None:
    """Writes queued together are committed in fewer transactions than writes, and none is lost."""
    storage, writer = await open_storage(engine)
    boots = [
        storage.write([sql.record_boot(f"S{i}", "ocpp1.6", StationInfo("v", "m"), RegistrationStatus.ACCEPTED, NOW)])
        for i in range(200)
    ]
    await asyncio.gather(*boots)
    assert writer.committed_sets == 200
    assert writer.batches < 200
    assert len(await storage.registrations()) == 200
    await writer.close()


async def test_one_bad_write_fails_alone(engine: AsyncEngine) -> None:
    """A write that breaks a constraint fails with StorageError; the others in its batch are committed."""
    storage, writer = await open_storage(engine)
    good = [
        storage.write([sql.record_boot(f"G{i}", "ocpp1.6", StationInfo("v", "m"), RegistrationStatus.ACCEPTED, NOW)])
        for i in range(20)
    ]
    naive = datetime(2026, 1, 1)  # no time zone: refused before it reaches the database
    bad = storage.write([sql.touch_station("G1", naive)])
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(results[-1], StorageError)
    assert all(r is None for r in results[:-1])
    assert len(await storage.registrations()) == 20
    # The writer keeps serving after the failure.
    await storage.write([sql.touch_station("G1", NOW)])
    await writer.close()


async def test_a_row_the_database_refuses_fails_alone(engine: AsyncEngine) -> None:
    """A write the database itself rejects (NOT NULL) fails only its own write set, committed in the same batch as
    good ones: the batch is rolled back and each set retried alone (on PostgreSQL the failed statement also
    aborts the transaction it ran in)."""
    storage, writer = await open_storage(engine)
    good = [
        storage.write([sql.record_boot(f"R{i}", "ocpp1.6", StationInfo("v", "m"), RegistrationStatus.ACCEPTED, NOW)])
        for i in range(20)
    ]
    refused = storage.write([Write(insert(stations), {"id": "BAD", "registration": None, "created_at": NOW})])
    results = await asyncio.gather(*good, refused, return_exceptions=True)
    assert isinstance(results[-1], StorageError) and "registration" in str(results[-1])
    assert all(r is None for r in results[:-1])
    assert sorted(await storage.registrations()) == sorted(f"R{i}" for i in range(20))
    assert writer.committed_sets == 20
    await writer.close()


async def test_close_commits_what_is_queued_then_refuses(engine: AsyncEngine) -> None:
    """Closing flushes queued writes; writes after close are refused with a clear error."""
    storage, writer = await open_storage(engine)
    pending = asyncio.ensure_future(
        storage.write([sql.record_boot("C", "ocpp1.6", StationInfo("v", "m"), RegistrationStatus.ACCEPTED, NOW)])
    )
    await asyncio.sleep(0)
    await writer.close()
    await pending
    with pytest.raises(StorageError, match="shutting down"):
        await storage.write([Write(sql.touch_station("C", NOW).statement, {"b_id": "C", "b_seen": NOW})])
