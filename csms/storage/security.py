"""Storage of station credentials and security events (tables in ``tables_security.py``).

Write builders are pure functions committed by the group-commit writer; reads take a connection.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.security import (
    PendingRotation,
    SecurityEvent,
    SecurityEventKind,
    SecurityProfile,
    StationCredentials,
)
from csms.storage.tables_security import security_events, station_credentials
from csms.storage.writer import Write

__all__ = ["insert_event", "put_credentials", "read_credentials", "read_events"]

_DELETE_CREDENTIALS = delete(station_credentials).where(station_credentials.c.station_id == bindparam("b_id"))
_INSERT_CREDENTIALS = insert(station_credentials)
_INSERT_EVENT = insert(security_events)


def put_credentials(credentials: StationCredentials, now: datetime) -> list[Write]:
    """Replace the station's row (delete + insert: the same statements on every database)."""
    values = {
        "station_id": credentials.station_id,
        "profile": int(credentials.profile),
        "password_hash": credentials.password_hash,
        "pending_hash": credentials.pending_hash,
        "pending_reason": credentials.pending_reason.value if credentials.pending_reason else None,
        "password_set_at": credentials.password_set_at,
        "updated_at": now,
    }
    return [Write(_DELETE_CREDENTIALS, {"b_id": credentials.station_id}), Write(_INSERT_CREDENTIALS, values)]


def insert_event(event: SecurityEvent) -> Write:
    return Write(
        _INSERT_EVENT,
        {
            "at": event.at,
            "kind": event.kind.value,
            "station_id": event.station_id,
            "remote_ip": event.remote_ip,
            "detail": event.detail[:500],
        },
    )


async def read_credentials(conn: AsyncConnection) -> list[StationCredentials]:
    return [_credentials(row) for row in (await conn.execute(select(station_credentials))).all()]


async def read_events(
    conn: AsyncConnection,
    station_ids: list[str] | None,
    kind: SecurityEventKind | None,
    limit: int,
    before_id: int | None,
) -> list[tuple[int, SecurityEvent]]:
    """Newest first. ``station_ids`` None = every event (also those with no station); a list = only those."""
    query = select(security_events).order_by(security_events.c.id.desc()).limit(limit)
    if station_ids is not None:
        query = query.where(security_events.c.station_id.in_(station_ids))
    if kind is not None:
        query = query.where(security_events.c.kind == kind.value)
    if before_id is not None:
        query = query.where(security_events.c.id < before_id)
    return [(row.id, _event(row)) for row in (await conn.execute(query)).all()]


def _credentials(row: Row[tuple[object, ...]]) -> StationCredentials:
    m = row._mapping
    return StationCredentials(
        station_id=m["station_id"],
        profile=SecurityProfile(m["profile"]),
        password_hash=m["password_hash"],
        pending_hash=m["pending_hash"],
        # Rows from before migration 0011 could only be pending after a RebootRequired.
        pending_reason=PendingRotation(m["pending_reason"] or PendingRotation.REBOOT_REQUIRED)
        if m["pending_hash"] is not None
        else None,
        password_set_at=m["password_set_at"],
        updated_at=m["updated_at"],
    )


def _event(row: Row[tuple[object, ...]]) -> SecurityEvent:
    m = row._mapping
    return SecurityEvent(m["at"], SecurityEventKind(m["kind"]), m["station_id"], m["remote_ip"], m["detail"])
