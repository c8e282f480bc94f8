"""Storage of connector specs, bookings, booking rules and strikes (tables in ``tables_bookings.py``).

Write builders are pure functions from domain values to :class:`Write` s, committed by the group-commit writer;
the read functions take a connection so the service decides when it reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.connectors import ConnectorKey, ConnectorSpec, ConnectorType
from csms.storage.tables import connectors
from csms.storage.tables_bookings import connector_specs
from csms.storage.writer import Write

__all__ = ["delete_connector_spec", "put_connector_spec", "read_connector_keys", "read_connector_specs"]

_INSERT_SPEC = insert(connector_specs)
_DELETE_SPEC = delete(connector_specs).where(
    connector_specs.c.station_id == bindparam("b_station"),
    connector_specs.c.evse_id == bindparam("b_evse"),
    connector_specs.c.connector_id == bindparam("b_connector"),
)


# -- reads --------------------------------------------------------------------------------------------------


async def read_connector_specs(conn: AsyncConnection) -> list[ConnectorSpec]:
    """Every spec an operator stored."""
    return [_spec(row) for row in (await conn.execute(select(connector_specs))).all()]


async def read_connector_keys(conn: AsyncConnection) -> list[ConnectorKey]:
    """Every connector a charger has reported (not the whole-station connector 0)."""
    query = select(connectors.c.station_id, connectors.c.evse_id, connectors.c.connector_id).where(
        connectors.c.evse_id > 0
    )
    return [(row.station_id, row.evse_id, row.connector_id) for row in (await conn.execute(query)).all()]


# -- write builders -----------------------------------------------------------------------------------------


def put_connector_spec(spec: ConnectorSpec, at: datetime) -> list[Write]:
    """Replace the connector's spec (delete + insert: the same statements on every database)."""
    values = {
        "station_id": spec.station_id,
        "evse_id": spec.evse_id,
        "connector_id": spec.connector_id,
        "connector_type": spec.connector_type.value,
        "max_power_w": spec.max_power_w,
        "bookable": spec.bookable,
        "updated_at": at,
    }
    return [delete_connector_spec(spec.key), Write(_INSERT_SPEC, values)]


def delete_connector_spec(key: ConnectorKey) -> Write:
    station_id, evse_id, connector_id = key
    return Write(_DELETE_SPEC, {"b_station": station_id, "b_evse": evse_id, "b_connector": connector_id})


# -- row mappers --------------------------------------------------------------------------------------------


def _spec(row: Row[Any]) -> ConnectorSpec:
    m = row._mapping
    return ConnectorSpec(
        station_id=m["station_id"],
        evse_id=m["evse_id"],
        connector_id=m["connector_id"],
        connector_type=ConnectorType(m["connector_type"]),
        max_power_w=m["max_power_w"],
        bookable=m["bookable"],
        configured=True,
    )
