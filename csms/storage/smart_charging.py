"""Storage of per-session smart-charging settings (needs and priority): one write builder, one read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.ev_charging import ChargingNeeds
from csms.domain.grid import Priority
from csms.storage.tables_smart_charging import charging_session_settings
from csms.storage.writer import Write

__all__ = ["SessionSettings", "put_session_settings", "read_session_settings"]

_TABLE = charging_session_settings
_DELETE = delete(_TABLE).where(_TABLE.c.transaction_id == bindparam("b_id"))
_INSERT = insert(_TABLE)


@dataclass(frozen=True, slots=True)
class SessionSettings:
    transaction_id: int
    station_id: str
    evse_id: int
    needs: ChargingNeeds
    priority: Priority
    priority_reason: str | None
    priority_set_by: str | None


def put_session_settings(settings: SessionSettings, at: datetime) -> list[Write]:
    """Replace the session's row (delete + insert: the same statements on every database)."""
    values: dict[str, Any] = {
        "transaction_id": settings.transaction_id,
        "station_id": settings.station_id,
        "evse_id": settings.evse_id,
        "energy_wh": settings.needs.energy_wh,
        "departure": settings.needs.departure,
        "max_current_a": settings.needs.max_current_a,
        "min_current_a": settings.needs.min_current_a,
        "priority": settings.priority.name.lower(),
        "priority_reason": settings.priority_reason,
        "priority_set_by": settings.priority_set_by,
        "updated_at": at,
    }
    return [Write(_DELETE, {"b_id": settings.transaction_id}), Write(_INSERT, values)]


async def read_session_settings(conn: AsyncConnection, transaction_ids: Iterable[int]) -> dict[int, SessionSettings]:
    ids = list(transaction_ids)
    if not ids:
        return {}
    rows = (await conn.execute(select(_TABLE).where(_TABLE.c.transaction_id.in_(ids)))).all()
    result: dict[int, SessionSettings] = {}
    for row in rows:
        m = row._mapping
        needs = ChargingNeeds(m["energy_wh"], m["departure"], m["max_current_a"], m["min_current_a"])
        priority = (
            Priority[m["priority"].upper()] if m["priority"].upper() in Priority.__members__ else Priority.STANDARD
        )
        result[m["transaction_id"]] = SessionSettings(
            m["transaction_id"],
            m["station_id"],
            m["evse_id"],
            needs,
            priority,
            m["priority_reason"],
            m["priority_set_by"],
        )
    return result
