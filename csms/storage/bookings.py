"""Storage of connector specs, bookings, booking rules and strikes (tables in ``tables_bookings.py``).

Write builders are pure functions from domain values to :class:`Write` s, committed by the group-commit writer;
the read functions take a connection so the service decides when it reads.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.bookings import LIVE, Booking, BookingRules, BookingStatus
from csms.domain.connectors import ConnectorKey, ConnectorSpec, ConnectorType
from csms.domain.grid import Priority
from csms.storage.tables import connectors, reservations
from csms.storage.tables_accounts import accounts
from csms.storage.tables_bookings import booking_rules, bookings, connector_specs, strikes
from csms.storage.writer import Write

__all__ = [
    "BookingFilter",
    "delete_connector_spec",
    "insert_booking",
    "insert_strike",
    "put_connector_spec",
    "put_rules",
    "read_account_priority",
    "read_booking",
    "read_bookings",
    "read_bookings_of",
    "read_connector_keys",
    "read_connector_specs",
    "read_connector_statuses",
    "read_id_counters",
    "read_live_bookings",
    "read_rules",
    "read_strikes",
    "update_booking",
]

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


async def read_connector_statuses(conn: AsyncConnection, station_ids: Collection[str]) -> dict[ConnectorKey, str]:
    """The last status each connector of these stations reported."""
    query = select(connectors.c.station_id, connectors.c.evse_id, connectors.c.connector_id, connectors.c.status)
    rows = (await conn.execute(query.where(connectors.c.station_id.in_(list(station_ids))))).all()
    return {(row.station_id, row.evse_id, row.connector_id): row.status for row in rows}


async def read_live_bookings(conn: AsyncConnection) -> list[Booking]:
    """Bookings that still occupy a slot: scheduled, reserved or active."""
    query = select(bookings).where(bookings.c.status.in_([s.value for s in LIVE])).order_by(bookings.c.id)
    return [_booking(row) for row in (await conn.execute(query)).all()]


async def read_booking(conn: AsyncConnection, booking_id: int) -> Booking | None:
    row = (await conn.execute(select(bookings).where(bookings.c.id == booking_id))).first()
    return _booking(row) if row else None


async def read_bookings_of(conn: AsyncConnection, account_id: str, since: datetime) -> list[Booking]:
    """A driver's bookings starting from ``since`` on, and every one of its bookings still live."""
    query = select(bookings).where(
        bookings.c.account_id == account_id,
        or_(bookings.c.starts_at >= since, bookings.c.status.in_([s.value for s in LIVE])),
    )
    return [_booking(row) for row in (await conn.execute(query)).all()]


class BookingFilter:
    """Which bookings a list shows; ``site_ids`` None = every site."""

    def __init__(
        self,
        account_id: str | None = None,
        site_ids: Collection[str] | None = None,
        status: BookingStatus | None = None,
        station_id: str | None = None,
    ) -> None:
        self.account_id = account_id
        self.site_ids = site_ids
        self.status = status
        self.station_id = station_id


async def read_bookings(conn: AsyncConnection, where: BookingFilter, limit: int, offset: int) -> list[Booking]:
    """Bookings, newest slot first."""
    query = select(bookings).order_by(bookings.c.starts_at.desc(), bookings.c.id.desc()).limit(limit).offset(offset)
    if where.account_id is not None:
        query = query.where(bookings.c.account_id == where.account_id)
    if where.site_ids is not None:
        query = query.where(bookings.c.site_id.in_(list(where.site_ids)))
    if where.status is not None:
        query = query.where(bookings.c.status == where.status.value)
    if where.station_id is not None:
        query = query.where(bookings.c.station_id == where.station_id)
    return [_booking(row) for row in (await conn.execute(query)).all()]


async def read_strikes(conn: AsyncConnection, account_id: str, site_id: str, since: datetime) -> list[datetime]:
    query = select(strikes.c.at).where(
        strikes.c.account_id == account_id, strikes.c.site_id == site_id, strikes.c.at >= since
    )
    return sorted(row.at for row in (await conn.execute(query)).all())


async def read_rules(conn: AsyncConnection) -> dict[str, BookingRules]:
    """Every site's booking rules."""
    return {row.site_id: _rules(row) for row in (await conn.execute(select(booking_rules))).all()}


async def read_id_counters(conn: AsyncConnection) -> tuple[int, int]:
    """The highest booking id and the highest reservation id in use (by bookings or operators' ReserveNow)."""
    booking = (await conn.execute(select(func.max(bookings.c.id)))).scalar() or 0
    by_bookings = (await conn.execute(select(func.max(bookings.c.reservation_id)))).scalar() or 0
    by_commands = (await conn.execute(select(func.max(reservations.c.id)))).scalar() or 0
    return int(booking), int(max(by_bookings, by_commands))


async def read_account_priority(conn: AsyncConnection, account_id: str) -> Priority:
    """The account's default priority; standard for an account without a row."""
    value = (await conn.execute(select(accounts.c.priority).where(accounts.c.id == account_id))).scalar()
    return Priority[str(value).upper()] if value and str(value).upper() in Priority.__members__ else Priority.STANDARD


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


_INSERT_BOOKING = insert(bookings)
_BOOKING_FIELDS = (
    "station_id",
    "evse_id",
    "connector_id",
    "power_w",
    "starts_at",
    "ends_at",
    "expires_at",
    "status",
    "reservation_id",
    "reserve_any",
    "transaction_id",
    "reason",
    "updated_at",
)
_UPDATE_BOOKING = (
    update(bookings)
    .where(bookings.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _BOOKING_FIELDS})
)
_INSERT_STRIKE = insert(strikes)
_INSERT_RULES = insert(booking_rules)
_DELETE_RULES = delete(booking_rules).where(booking_rules.c.site_id == bindparam("b_site"))


def _booking_values(booking: Booking) -> dict[str, Any]:
    wanted = booking.wanted or (None, None, None)
    return {
        "id": booking.id,
        "account_id": booking.account_id,
        "id_token": booking.id_token,
        "site_id": booking.site_id,
        "wanted_station_id": wanted[0],
        "wanted_evse_id": wanted[1],
        "wanted_connector_id": wanted[2],
        "connector_type": booking.connector_type.value if booking.connector_type else None,
        "starts_at": booking.starts_at,
        "ends_at": booking.ends_at,
        "expires_at": booking.expires_at,
        "energy_wh": booking.energy_wh,
        "priority": booking.priority.name.lower(),
        "station_id": booking.station_id,
        "evse_id": booking.evse_id,
        "connector_id": booking.connector_id,
        "power_w": booking.power_w,
        "status": booking.status.value,
        "reservation_id": booking.reservation_id,
        "reserve_any": booking.reserve_any,
        "transaction_id": booking.transaction_id,
        "quote": booking.quote,
        "reason": booking.reason,
        "created_at": booking.created_at,
        "updated_at": booking.updated_at,
    }


def insert_booking(booking: Booking) -> Write:
    return Write(_INSERT_BOOKING, _booking_values(booking))


def update_booking(booking: Booking) -> Write:
    """Where the booking is placed, its state and its reservation (what changes after creation)."""
    values = _booking_values(booking)
    return Write(_UPDATE_BOOKING, {"b_id": booking.id, **{f"b_{name}": values[name] for name in _BOOKING_FIELDS}})


def insert_strike(booking: Booking, at: datetime) -> Write:
    return Write(
        _INSERT_STRIKE,
        {"booking_id": booking.id, "account_id": booking.account_id, "site_id": booking.site_id, "at": at},
    )


def put_rules(site_id: str, rules: BookingRules, at: datetime) -> list[Write]:
    values = {
        "site_id": site_id,
        "no_overlap": rules.no_overlap,
        "max_active": rules.max_active,
        "max_per_day": rules.max_per_day,
        "max_per_week": rules.max_per_week,
        "max_horizon_minutes": _minutes(rules.max_horizon),
        "min_notice_minutes": _minutes(rules.min_notice),
        "max_duration_minutes": _minutes(rules.max_duration),
        "strikes_to_block": rules.strikes_to_block,
        "strike_window_days": rules.strike_window.days,
        "block_days": rules.block_for.days,
        "updated_at": at,
    }
    return [Write(_DELETE_RULES, {"b_site": site_id}), Write(_INSERT_RULES, values)]


def _minutes(span: timedelta | None) -> int | None:
    return None if span is None else int(span.total_seconds() // 60)


def _span(minutes: int | None) -> timedelta | None:
    return None if minutes is None else timedelta(minutes=minutes)


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


def _booking(row: Row[Any]) -> Booking:
    m = row._mapping
    wanted = None
    if m["wanted_station_id"] is not None:
        wanted = (m["wanted_station_id"], m["wanted_evse_id"], m["wanted_connector_id"])
    return Booking(
        id=m["id"],
        account_id=m["account_id"],
        id_token=m["id_token"],
        site_id=m["site_id"],
        starts_at=m["starts_at"],
        ends_at=m["ends_at"],
        expires_at=m["expires_at"],
        status=BookingStatus(m["status"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        priority=Priority[m["priority"].upper()],
        energy_wh=m["energy_wh"],
        connector_type=ConnectorType(m["connector_type"]) if m["connector_type"] else None,
        wanted=wanted,
        station_id=m["station_id"],
        evse_id=m["evse_id"],
        connector_id=m["connector_id"],
        power_w=m["power_w"],
        reservation_id=m["reservation_id"],
        reserve_any=m["reserve_any"],
        transaction_id=m["transaction_id"],
        quote=m["quote"],
        reason=m["reason"],
    )


def _rules(row: Row[Any]) -> BookingRules:
    m = row._mapping
    return BookingRules(
        no_overlap=m["no_overlap"],
        max_active=m["max_active"],
        max_per_day=m["max_per_day"],
        max_per_week=m["max_per_week"],
        max_horizon=_span(m["max_horizon_minutes"]),
        min_notice=_span(m["min_notice_minutes"]),
        max_duration=_span(m["max_duration_minutes"]),
        strikes_to_block=m["strikes_to_block"],
        strike_window=timedelta(days=m["strike_window_days"]),
        block_for=timedelta(days=m["block_days"]),
    )
