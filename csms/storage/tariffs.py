"""Storage of tariffs, session rules and the money side of sessions (tables in ``tables_tariffs.py``).

Write builders are pure functions from domain values to :class:`Write` s, committed by the group-commit writer;
:class:`TariffStore` reads on pooled connections.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select

from csms.domain.bookings import LIVE
from csms.domain.metering import ENERGY_REGISTER
from csms.domain.pricing import PriceQuote
from csms.domain.session_rules import (
    LimitAction,
    OverstayReason,
    SessionRules,
    SessionTimers,
    TrackedSession,
)
from csms.domain.tariffs import (
    CostBreakdown,
    Overstay,
    Prices,
    SessionPrice,
    Tariff,
    Tier,
    TimeBasis,
    TimeWindow,
)
from csms.domain.transactions import Transaction
from csms.errors import StorageError
from csms.storage.portable import greatest, upsert_insert
from csms.storage.sql import _transaction as transaction_from_row  # the one mapper of a transactions row
from csms.storage.tables import id_tokens, meter_values, transactions
from csms.storage.tables_bookings import bookings
from csms.storage.tables_tariffs import (
    DEFAULT_SCOPE,
    STARTS_SEEN,
    session_rules,
    tariff_progress,
    tariff_sessions,
    tariffs,
)
from csms.storage.writer import Write

__all__ = [
    "STARTS_MARGIN",
    "EndedSession",
    "TariffStore",
    "delete_rules",
    "delete_tariff",
    "insert_session",
    "put_rules",
    "put_tariff",
    "set_account",
    "set_cost",
    "set_price",
    "set_starts_seen",
    "set_timers",
    "tier_from_json",
    "tier_to_json",
]

_UPSERT_TARIFF = upsert_insert(tariffs)
_UPSERT_TARIFF = _UPSERT_TARIFF.on_conflict_do_update(
    index_elements=[tariffs.c.site_id],
    set_={c.name: _UPSERT_TARIFF.excluded[c.name] for c in tariffs.columns if c.name != "site_id"},
)
_DELETE_TARIFF = delete(tariffs).where(tariffs.c.site_id == bindparam("b_site"))
_UPSERT_RULES = upsert_insert(session_rules)
_UPSERT_RULES = _UPSERT_RULES.on_conflict_do_update(
    index_elements=[session_rules.c.site_id],
    set_={c.name: _UPSERT_RULES.excluded[c.name] for c in session_rules.columns if c.name != "site_id"},
)
_DELETE_RULES = delete(session_rules).where(session_rules.c.site_id == bindparam("b_site"))
# A replayed start finds its row already there.
_INSERT_SESSION = upsert_insert(tariff_sessions).on_conflict_do_nothing(
    index_elements=[tariff_sessions.c.transaction_id]
)
# A session not followed at its start that the site's changed rules now time: its closed row is opened again.
_UPSERT_SESSION = upsert_insert(tariff_sessions)
_UPSERT_SESSION = _UPSERT_SESSION.on_conflict_do_update(
    index_elements=[tariff_sessions.c.transaction_id],
    set_={c.name: _UPSERT_SESSION.excluded[c.name] for c in tariff_sessions.columns if c.name != "transaction_id"},
)
_TIMER_FIELDS = (
    "limit_at",
    "warning_at",
    "at_limit",
    "warned_at",
    "limit_reached_at",
    "charging_completed_at",
    "overstay_started_at",
    "overstay_reason",
    "connector_freed_at",
)
_PRICE_FIELDS = ("tariff_id", "currency", "tier", "price_source", "energy_per_kwh", "time_per_hour", "session_fee")
_SET_PRICE = (
    update(tariff_sessions)
    .where(tariff_sessions.c.transaction_id == bindparam("b_id"), tariff_sessions.c.costed_at.is_(None))
    .values({name: bindparam(f"b_{name}") for name in _PRICE_FIELDS})
)
_SET_ACCOUNT = (
    update(tariff_sessions)
    .where(tariff_sessions.c.transaction_id == bindparam("b_id"), tariff_sessions.c.account_id.is_(None))
    .values(account_id=bindparam("b_account"))
)
# Timers change only while the session is open: a late report never touches a costed row.
_SET_TIMERS = (
    update(tariff_sessions)
    .where(tariff_sessions.c.transaction_id == bindparam("b_id"), tariff_sessions.c.costed_at.is_(None))
    .values({name: bindparam(f"b_{name}") for name in _TIMER_FIELDS})
)
_COST_FIELDS = (
    "ended_at",
    "energy_wh",
    "energy_cost",
    "time_seconds",
    "time_cost",
    "fee_cost",
    "overstay_minutes",
    "overstay_cost",
    "overstay_from",
    "overstay_reason",
    "total",
    "costed_at",
)
# A cost is written once: a session costed again (after a crash before the batch's commit was known, or a
# replayed end) leaves the stored breakdown as it was.
_SET_COST = (
    update(tariff_sessions)
    .where(tariff_sessions.c.transaction_id == bindparam("b_id"), tariff_sessions.c.costed_at.is_(None))
    .values({name: bindparam(f"b_{name}") for name in _COST_FIELDS})
)
_UPSERT_PROGRESS = upsert_insert(tariff_progress)
_UPSERT_PROGRESS = _UPSERT_PROGRESS.on_conflict_do_update(
    index_elements=[tariff_progress.c.name],
    set_={"transaction_id": greatest(tariff_progress.c.transaction_id, _UPSERT_PROGRESS.excluded.transaction_id)},
)
# Starts commit a little out of transaction-id order (group commit across stations): after a crash, this many ids
# below the mark are checked again too.
STARTS_MARGIN = 10_000


def _write(statement: Any, values: dict[str, Any]) -> Write:
    # The group-commit writer binds values straight to sqlite3, past the column types: decimals go in as text.
    return Write(statement, {key: str(v) if isinstance(v, Decimal) else v for key, v in values.items()})


# Booking states that hold a connector's slot.
_LIVE_BOOKINGS = tuple(status.value for status in LIVE)


@dataclass(frozen=True, slots=True)
class EndedSession:
    """What costing an ended session reads: its transaction row, first/last energy register readings (Wh), and the
    quote of the booking it was matched to (if any)."""

    transaction: Transaction
    readings: tuple[float, float] | None
    booked_quote: PriceQuote | None = None


class TariffStore:
    """Reads of the money tables (writes go through ``SqlStorage.write`` with the builders below)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _all(self, query: Select[Any]) -> Sequence[Row[Any]]:
        try:
            async with self._engine.connect() as conn:
                rows: Sequence[Row[Any]] = (await conn.execute(query)).all()
                return rows
        except SQLAlchemyError as exc:
            raise StorageError(f"read failed: {exc}") from exc

    async def tariffs(self) -> list[Tariff]:
        return [_tariff(row) for row in await self._all(select(tariffs))]

    async def rules(self) -> dict[str, SessionRules]:
        return {row.site_id: _rules(row) for row in await self._all(select(session_rules))}

    async def open_sessions(self) -> list[TrackedSession]:
        """Sessions whose cost is not stored yet: in progress, or ended while the cost was not written."""
        query = select(tariff_sessions).where(tariff_sessions.c.costed_at.is_(None))
        return [_tracked(row) for row in await self._all(query)]

    async def session(self, transaction_id: int) -> tuple[TrackedSession, CostBreakdown | None] | None:
        query = select(tariff_sessions).where(tariff_sessions.c.transaction_id == transaction_id)
        rows = await self._all(query)
        if not rows:
            return None
        return _tracked(rows[0]), _cost(rows[0])

    async def booked_quote(self, reservation_id: int) -> PriceQuote | None:
        """The quote stored with the booking whose reservation this is (the latest, if reassigned), if any."""
        query = (
            select(bookings.c.quote)
            .where(bookings.c.reservation_id == reservation_id)
            .order_by(bookings.c.updated_at.desc())
        )
        for row in await self._all(query):
            if isinstance(row.quote, dict):
                return _quote(row.quote)
        return None

    async def booked_count(self, site_id: str, starts_at: datetime, ends_at: datetime) -> int:
        """Bookings at the site that hold a connector at some time between the two instants."""
        query = (
            select(func.count())
            .select_from(bookings)
            .where(
                bookings.c.site_id == site_id,
                bookings.c.status.in_(_LIVE_BOOKINGS),
                bookings.c.starts_at < ends_at,
                bookings.c.ends_at > starts_at,
            )
        )
        rows = await self._all(query)
        return int(rows[0][0])

    async def energy_readings(self, transaction_id: int) -> tuple[float, float] | None:
        """First and last whole-meter energy register reading (Wh) stored for the transaction, if any."""
        return (await self._readings([transaction_id])).get(transaction_id)

    async def _readings(self, transaction_ids: Iterable[int]) -> dict[int, tuple[float, float]]:
        query = (
            select(meter_values.c.transaction_id, meter_values.c.value, meter_values.c.unit)
            .where(
                meter_values.c.transaction_id.in_(list(transaction_ids)),
                meter_values.c.measurand == ENERGY_REGISTER,
                meter_values.c.phase.is_(None),
                meter_values.c.value.is_not(None),
            )
            .order_by(meter_values.c.transaction_id, meter_values.c.timestamp, meter_values.c.id)
        )
        found: dict[int, tuple[float, float]] = {}
        for row in await self._all(query):
            wh = row.value * (1000.0 if row.unit == "kWh" else 1.0)
            first = found.get(row.transaction_id)
            found[row.transaction_id] = (wh, wh) if first is None else (first[0], wh)
        return found

    async def ended_sessions(self, transaction_ids: Sequence[int]) -> dict[int, EndedSession]:
        """The transaction rows of sessions to cost, with their energy readings where the row has no meter stop and
        the quotes of the bookings they were matched to.

        Three queries for a whole batch of ended sessions, whatever its size.
        """
        if not transaction_ids:
            return {}
        wanted = list(transaction_ids)
        rows = await self._all(select(transactions).where(transactions.c.id.in_(wanted)))
        ended = [transaction_from_row(row) for row in rows]
        unmetered = [t.id for t in ended if t.energy_wh is None]
        readings = await self._readings(unmetered) if unmetered else {}
        query = select(bookings.c.transaction_id, bookings.c.quote).where(bookings.c.transaction_id.in_(wanted))
        quotes = {
            row.transaction_id: _quote(row.quote) for row in await self._all(query) if isinstance(row.quote, dict)
        }
        return {t.id: EndedSession(t, readings.get(t.id), quotes.get(t.id)) for t in ended}

    async def token_owners(self, tokens: Iterable[str]) -> dict[str, str | None]:
        """The owner (account) of each known id token among ``tokens``; unknown tokens are left out."""
        wanted = sorted(set(tokens))
        if not wanted:
            return {}
        query = select(id_tokens.c.token, id_tokens.c.owner).where(id_tokens.c.token.in_(wanted))
        return {row.token: row.owner for row in await self._all(query)}

    async def booked_quotes(self, reservation_ids: Iterable[int]) -> dict[int, PriceQuote]:
        """The quote stored with the booking of each reservation (the latest booking, if reassigned)."""
        wanted = sorted(set(reservation_ids))
        if not wanted:
            return {}
        query = (
            select(bookings.c.reservation_id, bookings.c.quote)
            .where(bookings.c.reservation_id.in_(wanted))
            .order_by(bookings.c.updated_at)
        )
        found: dict[int, PriceQuote] = {}
        for row in await self._all(query):
            if isinstance(row.quote, dict):
                found[row.reservation_id] = _quote(row.quote)  # later rows (newer bookings) win
        return found

    async def starts_seen(self) -> int:
        """The highest transaction id whose start the session-rules loop committed (see ``tariff_progress``)."""
        rows = await self._all(select(tariff_progress.c.transaction_id).where(tariff_progress.c.name == STARTS_SEEN))
        return int(rows[0][0]) if rows else 0

    async def unfollowed(self, above_id: int) -> list[Transaction]:
        """Transactions with an id above ``above_id`` that have no ``tariff_sessions`` row, oldest first."""
        query = (
            select(transactions)
            .outerjoin(tariff_sessions, tariff_sessions.c.transaction_id == transactions.c.id)
            .where(transactions.c.id > above_id, tariff_sessions.c.transaction_id.is_(None))
            .order_by(transactions.c.id)
        )
        return [transaction_from_row(row) for row in await self._all(query)]


# -- write builders -----------------------------------------------------------------------------------------


def _scope(site_id: str | None) -> str:
    return DEFAULT_SCOPE if site_id is None else site_id


def put_tariff(tariff: Tariff, at: datetime) -> Write:
    return _write(
        _UPSERT_TARIFF,
        {
            "site_id": _scope(tariff.site_id),
            "currency": tariff.currency,
            "time_zone": tariff.time_zone,
            "energy_per_kwh": tariff.prices.energy_per_kwh,
            "time_per_hour": tariff.prices.time_per_hour,
            "session_fee": tariff.prices.session_fee,
            "time_basis": tariff.time_basis.value,
            "overstay_per_minute": tariff.overstay.per_minute,
            "overstay_cap": tariff.overstay.cap,
            "overstay_grace_minutes": tariff.overstay.grace_minutes,
            "tiers": [tier_to_json(tier) for tier in tariff.tiers],
            "updated_at": at,
        },
    )


def delete_tariff(site_id: str | None) -> Write:
    return Write(_DELETE_TARIFF, {"b_site": _scope(site_id)})


def put_rules(site_id: str, rules: SessionRules, at: datetime) -> Write:
    return Write(
        _UPSERT_RULES,
        {
            "site_id": site_id,
            "max_charging_minutes": rules.max_charging_minutes,
            "warning_minutes": rules.warning_minutes,
            "at_limit": rules.at_limit.value,
            "updated_at": at,
        },
    )


def delete_rules(site_id: str) -> Write:
    return Write(_DELETE_RULES, {"b_site": site_id})


def insert_session(session: TrackedSession, closed_at: datetime | None = None, reopen: bool = False) -> Write:
    """The session's row, written when it starts (a replayed start leaves the row as it is).

    ``closed_at``: the session is not followed (no tariff, no time limit): the row only records that its start was
    seen, closed at once (no cost, never loaded as open). ``reopen``: replace such a row, now followed.
    """
    price, timers = session.price, session.timers
    values: dict[str, Any] = {column.name: None for column in tariff_sessions.columns}
    values.update(
        transaction_id=session.transaction_id,
        station_id=session.station_id,
        site_id=session.site_id,
        account_id=session.account_id,
        started_at=timers.started_at,
        limit_at=timers.limit_at,
        warning_at=timers.warning_at,
        at_limit=timers.at_limit.value,
        grace_seconds=int(timers.grace.total_seconds()),
    )
    if price is not None:
        values.update(
            tariff_id=price.tariff_id,
            currency=price.currency,
            tier=price.tier,
            price_source=price.source,
            energy_per_kwh=price.prices.energy_per_kwh,
            time_per_hour=price.prices.time_per_hour,
            session_fee=price.prices.session_fee,
            time_basis=price.time_basis.value,
            overstay_per_minute=price.overstay.per_minute,
            overstay_cap=price.overstay.cap,
        )
    values.update(_timer_values(timers))
    values["costed_at"] = closed_at
    return _write(_UPSERT_SESSION if reopen else _INSERT_SESSION, values)


def _timer_values(timers: SessionTimers) -> dict[str, Any]:
    return {
        "warned_at": timers.warned_at,
        "limit_reached_at": timers.limit_reached_at,
        "charging_completed_at": timers.charging_completed_at,
        "overstay_started_at": timers.overstay_started_at,
        "overstay_reason": timers.overstay_reason.value if timers.overstay_reason else None,
        "connector_freed_at": timers.connector_freed_at,
        "limit_at": timers.limit_at,
        "warning_at": timers.warning_at,
        "at_limit": timers.at_limit.value,
    }


def set_price(transaction_id: int, price: SessionPrice) -> Write:
    """The session turned out to belong to a booking: the price quoted for it replaces the tariff's."""
    values = {
        "tariff_id": price.tariff_id,
        "currency": price.currency,
        "tier": price.tier,
        "price_source": price.source,
        "energy_per_kwh": price.prices.energy_per_kwh,
        "time_per_hour": price.prices.time_per_hour,
        "session_fee": price.prices.session_fee,
    }
    return _write(_SET_PRICE, {"b_id": transaction_id, **{f"b_{k}": v for k, v in values.items()}})


def set_account(transaction_id: int, account_id: str) -> Write:
    """The session's driver, learnt from an id token presented after it started (kept if one is known)."""
    return Write(_SET_ACCOUNT, {"b_id": transaction_id, "b_account": account_id})


def set_starts_seen(transaction_id: int) -> Write:
    """The session-rules loop committed the starts up to ``transaction_id`` (the mark only moves up)."""
    return Write(_UPSERT_PROGRESS, {"name": STARTS_SEEN, "transaction_id": transaction_id})


def set_timers(timers: SessionTimers) -> Write:
    return Write(
        _SET_TIMERS, {"b_id": timers.transaction_id, **{f"b_{k}": v for k, v in _timer_values(timers).items()}}
    )


def set_cost(
    transaction_id: int, ended_at: datetime, cost: CostBreakdown | None, energy_wh: float, at: datetime
) -> Write:
    """The session ended: its breakdown (None when no tariff applied; the row is closed all the same)."""
    values: dict[str, Any] = {
        "ended_at": ended_at,
        "energy_wh": energy_wh,
        "energy_cost": None,
        "time_seconds": None,
        "time_cost": None,
        "fee_cost": None,
        "overstay_minutes": None,
        "overstay_cost": None,
        "overstay_from": None,
        "overstay_reason": None,
        "total": None,
        "costed_at": at,
    }
    if cost is not None:
        values.update(
            energy_cost=cost.energy,
            time_seconds=cost.time_seconds,
            time_cost=cost.time,
            fee_cost=cost.session_fee,
            overstay_minutes=cost.overstay_minutes,
            overstay_cost=cost.overstay,
            overstay_from=cost.overstay_started_at,
            overstay_reason=cost.overstay_reason,
            total=cost.total,
        )
    return _write(_SET_COST, {"b_id": transaction_id, **{f"b_{k}": v for k, v in values.items()}})


# -- JSON of tiers --------------------------------------------------------------------------------------------


def _prices_json(prices: Prices) -> dict[str, str]:
    return {
        "energy_per_kwh": str(prices.energy_per_kwh),
        "time_per_hour": str(prices.time_per_hour),
        "session_fee": str(prices.session_fee),
    }


def _prices(data: dict[str, Any]) -> Prices:
    return Prices(Decimal(data["energy_per_kwh"]), Decimal(data["time_per_hour"]), Decimal(data["session_fee"]))


def tier_to_json(tier: Tier) -> dict[str, Any]:
    window = tier.window
    return {
        "name": tier.name,
        "min_utilisation": tier.min_utilisation,
        "min_forecast": tier.min_forecast,
        "window": None
        if window is None
        else {
            "weekdays": sorted(window.weekdays),
            "start": window.start.isoformat("minutes"),
            "end": window.end.isoformat("minutes"),
        },
        "multiplier": None if tier.multiplier is None else str(tier.multiplier),
        "prices": None if tier.prices is None else _prices_json(tier.prices),
    }


def tier_from_json(data: dict[str, Any]) -> Tier:
    window = data.get("window")
    return Tier(
        name=data["name"],
        min_utilisation=data.get("min_utilisation"),
        min_forecast=data.get("min_forecast"),
        window=None
        if window is None
        else TimeWindow(
            frozenset(window["weekdays"]), time.fromisoformat(window["start"]), time.fromisoformat(window["end"])
        ),
        multiplier=None if data.get("multiplier") is None else Decimal(data["multiplier"]),
        prices=None if data.get("prices") is None else _prices(data["prices"]),
    )


# -- row mappers --------------------------------------------------------------------------------------------


def _tariff(row: Row[Any]) -> Tariff:
    m = row._mapping
    return Tariff(
        site_id=None if m["site_id"] == DEFAULT_SCOPE else m["site_id"],
        currency=m["currency"],
        prices=Prices(m["energy_per_kwh"], m["time_per_hour"], m["session_fee"]),
        time_basis=TimeBasis(m["time_basis"]),
        time_zone=m["time_zone"],
        overstay=Overstay(m["overstay_per_minute"], m["overstay_cap"], m["overstay_grace_minutes"]),
        tiers=tuple(tier_from_json(tier) for tier in m["tiers"]),
    )


def _rules(row: Row[Any]) -> SessionRules:
    m = row._mapping
    return SessionRules(m["max_charging_minutes"], m["warning_minutes"], LimitAction(m["at_limit"]))


def _tracked(row: Row[Any]) -> TrackedSession:
    m = row._mapping
    price = None
    if m["tariff_id"] is not None:
        price = SessionPrice(
            tariff_id=m["tariff_id"],
            currency=m["currency"],
            tier=m["tier"],
            prices=Prices(m["energy_per_kwh"], m["time_per_hour"], m["session_fee"]),
            time_basis=TimeBasis(m["time_basis"]),
            overstay=Overstay(m["overstay_per_minute"], m["overstay_cap"], m["grace_seconds"] // 60),
            source=m["price_source"],
        )
    timers = SessionTimers(
        transaction_id=m["transaction_id"],
        started_at=m["started_at"],
        limit_at=m["limit_at"],
        warning_at=m["warning_at"],
        at_limit=LimitAction(m["at_limit"]),
        grace=timedelta(seconds=m["grace_seconds"]),
        warned_at=m["warned_at"],
        limit_reached_at=m["limit_reached_at"],
        charging_completed_at=m["charging_completed_at"],
        overstay_started_at=m["overstay_started_at"],
        overstay_reason=OverstayReason(m["overstay_reason"]) if m["overstay_reason"] else None,
        connector_freed_at=m["connector_freed_at"],
    )
    return TrackedSession(m["transaction_id"], m["station_id"], m["site_id"], m["account_id"], price, timers)


def _cost(row: Row[Any]) -> CostBreakdown | None:
    m = row._mapping
    if m["costed_at"] is None or m["total"] is None:
        return None
    return CostBreakdown(
        currency=m["currency"],
        tier=m["tier"],
        source=m["price_source"],
        energy_wh=m["energy_wh"],
        energy=m["energy_cost"],
        time_seconds=m["time_seconds"],
        time_basis=TimeBasis(m["time_basis"]),
        time=m["time_cost"],
        session_fee=m["fee_cost"],
        overstay_minutes=m["overstay_minutes"],
        overstay=m["overstay_cost"],
        overstay_reason=m["overstay_reason"] if m["overstay_minutes"] else None,
        overstay_started_at=m["overstay_from"],
        total=m["total"],
    )


def _quote(data: dict[str, Any]) -> PriceQuote:
    """A quote as the booking service stores it (decimal strings, ISO 8601 instants)."""
    return PriceQuote(
        currency=data["currency"],
        tariff_id=data["tariff_id"],
        tier=data["tier"],
        energy_per_kwh=Decimal(data["energy_per_kwh"]),
        time_per_hour=Decimal(data["time_per_hour"]),
        session_fee=Decimal(data["session_fee"]),
        estimated_total=Decimal(data["estimated_total"]),
        quoted_at=datetime.fromisoformat(data["quoted_at"]),
        valid_until=datetime.fromisoformat(data["valid_until"]),
    )
