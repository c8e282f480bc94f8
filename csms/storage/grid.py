"""Storage of the grid setup: site trees, limit windows and station wiring (tables in ``tables.py``).

Write builders are pure functions from domain values to :class:`Write` s, committed by the group-commit writer
like every other write; :func:`read_setup` loads the whole setup at start.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.grid import GridNode, StationWiring
from csms.domain.grid_setup import DailyTimes, GridSetup, UnmanagedLoad, WindowSpec
from csms.storage.tables import grid_limit_windows, grid_nodes, station_wiring
from csms.storage.writer import Write

__all__ = [
    "delete_node",
    "delete_window",
    "delete_wiring",
    "insert_node",
    "insert_window",
    "put_wiring",
    "read_setup",
    "set_unmanaged_load",
    "update_node",
]

_NODE_FIELDS = ("parent_id", "max_current_a", "max_power_w", "phases", "voltage_v", "updated_at")
_INSERT_NODE = insert(grid_nodes)
_UPDATE_NODE = (
    update(grid_nodes)
    .where(grid_nodes.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _NODE_FIELDS})
)
_SET_UNMANAGED = (
    update(grid_nodes)
    .where(grid_nodes.c.id == bindparam("b_id"))
    .values(
        unmanaged_l1_a=bindparam("b_l1"),
        unmanaged_l2_a=bindparam("b_l2"),
        unmanaged_l3_a=bindparam("b_l3"),
        unmanaged_at=bindparam("b_at"),
    )
)
_DELETE_NODE = delete(grid_nodes).where(grid_nodes.c.id == bindparam("b_id"))
_DELETE_NODE_WINDOWS = delete(grid_limit_windows).where(grid_limit_windows.c.node_id == bindparam("b_id"))
_INSERT_WINDOW = insert(grid_limit_windows)
_DELETE_WINDOW = delete(grid_limit_windows).where(grid_limit_windows.c.id == bindparam("b_id"))
_INSERT_WIRING = insert(station_wiring)
_DELETE_WIRING = delete(station_wiring).where(station_wiring.c.station_id == bindparam("b_id"))


# -- reads --------------------------------------------------------------------------------------------------


async def read_setup(conn: AsyncConnection) -> GridSetup:
    """Every node, window and wiring, with the last unmanaged load reported per node."""
    nodes: dict[str, GridNode] = {}
    unmanaged: dict[str, UnmanagedLoad] = {}
    for row in (await conn.execute(select(grid_nodes))).all():
        m = row._mapping
        nodes[m["id"]] = _node(row)
        if m["unmanaged_at"] is not None:
            amps = (m["unmanaged_l1_a"], m["unmanaged_l2_a"], m["unmanaged_l3_a"])
            unmanaged[m["id"]] = UnmanagedLoad(amps, m["unmanaged_at"])
    windows = {w.id: w for w in map(_window, (await conn.execute(select(grid_limit_windows))).all())}
    wirings = {w.station_id: w for w in map(_wiring, (await conn.execute(select(station_wiring))).all())}
    return GridSetup(nodes, windows, wirings, unmanaged)


# -- write builders -----------------------------------------------------------------------------------------


def _node_values(node: GridNode, at: datetime) -> dict[str, Any]:
    return {
        "parent_id": node.parent_id,
        "max_current_a": node.max_current_a,
        "max_power_w": node.max_power_w,
        "phases": _digits(node.phases),
        "voltage_v": node.voltage_v,
        "updated_at": at,
    }


def insert_node(node: GridNode, at: datetime) -> Write:
    values = {
        "id": node.id,
        **_node_values(node, at),
        "unmanaged_l1_a": 0.0,
        "unmanaged_l2_a": 0.0,
        "unmanaged_l3_a": 0.0,
        "unmanaged_at": None,
    }
    return Write(_INSERT_NODE, values)


def update_node(node: GridNode, at: datetime) -> Write:
    """The node's definition; its unmanaged load (written by :func:`set_unmanaged_load`) is left alone."""
    return Write(_UPDATE_NODE, {"b_id": node.id, **{f"b_{k}": v for k, v in _node_values(node, at).items()}})


def delete_node(node_id: str) -> list[Write]:
    return [Write(_DELETE_NODE_WINDOWS, {"b_id": node_id}), Write(_DELETE_NODE, {"b_id": node_id})]


def set_unmanaged_load(node_id: str, load: UnmanagedLoad) -> Write:
    l1, l2, l3 = load.amps
    return Write(_SET_UNMANAGED, {"b_id": node_id, "b_l1": l1, "b_l2": l2, "b_l3": l3, "b_at": load.at})


def insert_window(window: WindowSpec, at: datetime) -> Write:
    daily = window.daily
    return Write(
        _INSERT_WINDOW,
        {
            "id": window.id,
            "node_id": window.node_id,
            "max_current_a": window.max_current_a,
            "max_power_w": window.max_power_w,
            "starts_at": window.start,
            "ends_at": window.end,
            "daily_start": daily.start.isoformat() if daily else None,
            "daily_end": daily.end.isoformat() if daily else None,
            "weekdays": _digits(daily.weekdays) if daily else None,
            "time_zone": daily.timezone if daily else None,
            "created_at": at,
        },
    )


def delete_window(window_id: int) -> Write:
    return Write(_DELETE_WINDOW, {"b_id": window_id})


def put_wiring(wiring: StationWiring, at: datetime) -> list[Write]:
    """Replace the station's wiring (delete + insert: the same statements on every database)."""
    values = {
        "station_id": wiring.station_id,
        "node_id": wiring.node_id,
        "rotation": _digits(wiring.rotation),
        "phases": wiring.phases,
        "max_current_a": wiring.max_current_a,
        "updated_at": at,
    }
    return [delete_wiring(wiring.station_id), Write(_INSERT_WIRING, values)]


def delete_wiring(station_id: str) -> Write:
    return Write(_DELETE_WIRING, {"b_id": station_id})


# -- row mappers --------------------------------------------------------------------------------------------


def _digits(values: tuple[int, ...]) -> str:
    return "".join(str(v) for v in values)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in text)


def _node(row: Row[Any]) -> GridNode:
    m = row._mapping
    return GridNode(
        id=m["id"],
        parent_id=m["parent_id"],
        max_current_a=m["max_current_a"],
        max_power_w=m["max_power_w"],
        phases=_ints(m["phases"]),
        voltage_v=m["voltage_v"],
    )


def _window(row: Row[Any]) -> WindowSpec:
    m = row._mapping
    daily = None
    if m["daily_start"] is not None:
        daily = DailyTimes(
            time.fromisoformat(m["daily_start"]),
            time.fromisoformat(m["daily_end"]),
            _ints(m["weekdays"]),
            m["time_zone"],
        )
    return WindowSpec(
        id=m["id"],
        node_id=m["node_id"],
        max_current_a=m["max_current_a"],
        max_power_w=m["max_power_w"],
        start=m["starts_at"],
        end=m["ends_at"],
        daily=daily,
    )


def _wiring(row: Row[Any]) -> StationWiring:
    m = row._mapping
    return StationWiring(
        station_id=m["station_id"],
        node_id=m["node_id"],
        rotation=_ints(m["rotation"]),
        phases=m["phases"],
        max_current_a=m["max_current_a"],
    )
