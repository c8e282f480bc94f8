"""GridService against a real SQLite file: checked before stored, hot copy, on_change, concurrency, reload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from csms.domain.grid import GridNode, StationWiring
from csms.domain.grid_setup import DailyTimes, WindowSpec
from csms.errors import Conflict, InvalidRequest, NotFound
from csms.service.grid import GridService
from csms.storage.engine import create_engine, create_writer_engine, migrate
from csms.storage.sql import SqlStorage
from csms.storage.writer import GroupCommitWriter

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)


class Grid:
    """A GridService on its own database, counting on_change calls and what the hot copy held at each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.changes: list[set[str]] = []

    async def open(self) -> GridService:
        self.engine = create_engine(f"sqlite+aiosqlite:///{self.path}")
        await migrate(self.engine)
        self.writer = GroupCommitWriter(create_writer_engine(str(self.engine.url)))
        self.writer.start()
        self.service = GridService(
            SqlStorage(self.engine, self.writer), on_change=lambda: self.changes.append(set(self.service.setup.nodes))
        )
        await self.service.load()
        return self.service

    async def close(self) -> None:
        await self.writer.close()
        await self.engine.dispose()

    async def reopen(self) -> GridService:
        await self.close()
        return await self.open()


@pytest.fixture
async def grid(tmp_path: Path) -> AsyncIterator[Grid]:
    grid = Grid(tmp_path / "grid.db")
    await grid.open()
    try:
        yield grid
    finally:
        await grid.close()


async def test_change_is_stored_then_applied_then_announced(grid: Grid) -> None:
    """on_change runs once per committed change, after the hot copy holds it; a reload reads the same setup."""
    service = grid.service
    await service.create_node(GridNode("site", max_current_a=100), NOW)
    await service.create_node(GridNode("feeder", "site", max_current_a=63, phases=(1, 2)), NOW)
    await service.set_wiring(StationWiring("CP1", "feeder", (2, 1, 3), 1, 16), NOW)
    assert grid.changes == [{"site"}, {"site", "feeder"}, {"site", "feeder"}]
    before = service.setup
    assert (await grid.reopen()).setup == before


async def test_refused_change_stores_nothing_and_announces_nothing(grid: Grid) -> None:
    """A change that breaks a rule raises Conflict/InvalidRequest/NotFound; setup, database and listeners stay."""
    service = grid.service
    await service.create_node(GridNode("site", phases=(1,)), NOW)
    grid.changes.clear()
    with pytest.raises(Conflict, match="already exists"):
        await service.create_node(GridNode("site"), NOW)
    with pytest.raises(Conflict, match="carries only L1"):
        await service.create_node(GridNode("feeder", "site"), NOW)
    with pytest.raises(InvalidRequest, match="unknown parent"):
        await service.create_node(GridNode("feeder", "nowhere"), NOW)
    with pytest.raises(NotFound, match="grid node nowhere"):
        await service.delete_node("nowhere")
    with pytest.raises(InvalidRequest, match="must end in the future"):
        await service.add_window(WindowSpec(0, "site", 5, start=NOW - timedelta(hours=2), end=NOW), NOW)
    assert grid.changes == []
    assert set((await grid.reopen()).setup.nodes) == {"site"}


async def test_concurrent_changes_all_land(grid: Grid) -> None:
    """Structural changes racing each other are serialised: none is lost from memory or the database."""
    service = grid.service
    await service.create_node(GridNode("site"), NOW)
    await asyncio.gather(*(service.create_node(GridNode(f"n{i}", "site"), NOW) for i in range(20)))
    assert len(service.setup.nodes) == 21
    assert len((await grid.reopen()).setup.nodes) == 21


async def test_unmanaged_load_is_kept_cheaply_and_survives_restart(grid: Grid) -> None:
    """Load reports update the hot copy (even during a structural change), persist, and only announce changes."""
    service = grid.service
    await service.create_node(GridNode("site"), NOW)
    grid.changes.clear()
    await asyncio.gather(
        service.create_node(GridNode("feeder", "site"), NOW),
        service.set_unmanaged_load("site", (10, 11, 12), NOW),
    )
    assert service.setup.unmanaged["site"].amps == (10, 11, 12)
    assert "feeder" in service.setup.nodes
    await service.set_unmanaged_load("site", (10, 11, 12), NOW + timedelta(seconds=5))
    assert len(grid.changes) == 2  # the node and the first report; the unchanged report is stored silently
    reloaded = await grid.reopen()
    assert reloaded.setup.unmanaged["site"].amps == (10, 11, 12)
    assert reloaded.setup.unmanaged["site"].at == NOW + timedelta(seconds=5)
    assert {n.id: n for n in reloaded.config(NOW).nodes}["site"].unmanaged_a == (10, 11, 12)


async def test_config_is_cached_per_hour_and_window_ids_continue_after_reload(grid: Grid) -> None:
    """config() returns the same object within an hour and until a change; new window ids follow stored ones."""
    service = grid.service
    await service.create_node(GridNode("site", max_current_a=100), NOW)
    daily = WindowSpec(0, "site", 40, daily=DailyTimes(time(17), time(20)))
    first = await service.add_window(daily, NOW)
    config = service.config(NOW)
    assert service.config(NOW + timedelta(minutes=20)) is config
    assert service.config(NOW + timedelta(hours=1)) is not config
    assert len(config.nodes[0].schedule) == 2  # today's and tomorrow's 17:00-20:00
    await service.remove_window("site", first.id)
    assert service.config(NOW) is not config and service.config(NOW).nodes[0].schedule == ()
    await service.add_window(daily, NOW)
    reloaded = await grid.reopen()
    assert (await reloaded.add_window(daily, NOW)).id == 3
