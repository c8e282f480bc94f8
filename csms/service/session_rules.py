"""Session rules and the money side of sessions: price fixed at start, time-limit warnings, stop or overstay,
overstay fees and the cost breakdown when a session ends.

It observes chargers (a :class:`~csms.service.charger.ChargingObserver`): observer calls only queue what happened
and wake the loop (``csms.runtime.session_rules``), which calls :meth:`SessionRulesService.process` to store it and
:meth:`SessionRulesService.tick` to act on timers. Every timer change is committed before it is acted on, so a
restart resumes from the database.

Charging completed is taken from what the charger reports: 1.6 StatusNotification SuspendedEV, 2.0.1
TransactionEvent chargingState EVConnected or SuspendedEV, once the session was seen charging (a car that has not
started drawing yet is not done). Charging again before overstay started clears it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from csms.config import TariffSettings
from csms.domain.commands import RemoteStop
from csms.domain.ev_charging import ChargingNeeds
from csms.domain.metering import MeterSample
from csms.domain.session_rules import (
    Due,
    SessionRules,
    SessionTimers,
    TrackedSession,
    due,
    overstay_start,
)
from csms.domain.stations import ConnectorState, ConnectorStatus, StationId
from csms.domain.tariffs import CostBreakdown, SessionUsage, session_cost
from csms.domain.transactions import Transaction
from csms.errors import NotFound, StationError
from csms.service.commands import CommandService
from csms.service.events import EventBus
from csms.service.grid import GridService
from csms.service.tariffs import TariffService
from csms.storage import tariffs as store
from csms.storage.sql import SqlStorage
from csms.storage.tariffs import TariffStore

__all__ = ["SessionCost", "SessionRulesService"]

log = structlog.get_logger(__name__)

_COMPLETE_16 = frozenset({ConnectorStatus.SUSPENDED_EV})
_CHARGING_16 = frozenset({ConnectorStatus.CHARGING})
_COMPLETE_201 = frozenset({"EVConnected", "SuspendedEV"})
_CHARGING_201 = "Charging"


@dataclass(frozen=True, slots=True)
class _Started:
    transaction: Transaction


@dataclass(frozen=True, slots=True)
class _Ended:
    transaction_id: int


@dataclass(frozen=True, slots=True)
class _State:
    """The car charges (``charging``) or completed charging, reported at ``at``."""

    station_id: str
    evse_id: int
    transaction_id: int | None
    charging: bool
    at: datetime


_Happening = _Started | _Ended | _State


@dataclass(frozen=True, slots=True)
class SessionCost:
    """A session's cost as the API shows it: ``final`` once the session ended and its breakdown is stored."""

    session: TrackedSession
    breakdown: CostBreakdown | None
    final: bool


class SessionRulesService:
    def __init__(
        self,
        storage: SqlStorage,
        reads: TariffStore,
        tariffs: TariffService,
        grid: GridService,
        commands: CommandService,
        events: EventBus,
        settings: TariffSettings,
    ) -> None:
        self._storage = storage
        self._reads = reads
        self._tariffs = tariffs
        self._grid = grid
        self._commands = commands
        self._events = events
        self._settings = settings
        self._rules: dict[str, SessionRules] = {}
        self._sessions: dict[int, TrackedSession] = {}
        self._transactions: dict[int, Transaction] = {}
        self._by_evse: dict[tuple[str, int], int] = {}  # (station, evse) -> transaction in progress there
        self._seen_charging: set[int] = set()
        self._stop_retry_at: dict[int, datetime] = {}
        self._inbox: deque[_Happening] = deque()
        self._wake: Callable[[], None] = lambda: None

    def bind(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    async def load(self, active: list[Transaction]) -> None:
        """Rules, and the sessions followed: those in progress resume, those that ended unbilled get costed."""
        self._rules = await self._reads.rules()
        self._transactions = {transaction.id: transaction for transaction in active}
        self._by_evse = {(t.station_id, t.evse_id): t.id for t in active}
        for session in await self._reads.open_sessions():
            self._sessions[session.transaction_id] = session
            if session.transaction_id in self._transactions:
                # Sessions that were going on before the restart have charged.
                self._seen_charging.add(session.transaction_id)
            else:
                self._inbox.append(_Ended(session.transaction_id))

    # -- rules -----------------------------------------------------------------------------------------------

    def rules(self, site_id: str) -> SessionRules:
        """The site's rules (not limited in time when none are configured)."""
        return self._rules.get(site_id, SessionRules())

    async def put_rules(self, site_id: str, rules: SessionRules, now: datetime) -> SessionRules:
        await self._storage.write([store.put_rules(site_id, rules, now)])
        self._rules[site_id] = rules
        return rules

    # -- observer (called after each commit: cheap, never raises) ----------------------------------------------

    def transaction_started(self, transaction: Transaction, now: datetime) -> None:
        self._push(_Started(transaction))

    def transaction_ended(self, transaction: Transaction, now: datetime) -> None:
        self._push(_Ended(transaction.id))

    def metered(self, station_id: str, evse_id: int, samples: tuple[MeterSample, ...], now: datetime) -> None:
        pass

    def connector_changed(self, state: ConnectorState, now: datetime) -> None:
        self._tariffs.connector_changed(state)
        if state.status in _COMPLETE_16 or state.status in _CHARGING_16:
            charging = state.status in _CHARGING_16
            self._push(_State(state.station_id, state.evse_id, None, charging, state.timestamp))

    def station_booted(self, station_id: str, now: datetime) -> None:
        pass

    def charging_needs(self, station_id: str, evse_id: int, needs: ChargingNeeds, now: datetime) -> bool:
        return False

    def charging_state(self, transaction: Transaction, state: str, now: datetime) -> None:
        if state in _COMPLETE_201 or state == _CHARGING_201:
            self._push(_State(transaction.station_id, transaction.evse_id, transaction.id, state == _CHARGING_201, now))

    def _push(self, happening: _Happening) -> None:
        self._inbox.append(happening)
        self._wake()

    # -- the loop's work --------------------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return bool(self._inbox)

    async def process(self, now: datetime) -> None:
        """Store what chargers reported since the last call, in order."""
        while self._inbox:
            happening = self._inbox.popleft()
            match happening:
                case _Started(transaction):
                    await self._start(transaction, now)
                case _Ended(transaction_id):
                    await self._end(transaction_id, now)
                case _State():
                    await self._charging_state(happening)

    async def tick(self, now: datetime) -> None:
        """Act on every timer that is due: warn, stop or move to overstay, start overstay billing."""
        for session in list(self._sessions.values()):
            if session.transaction_id not in self._transactions:
                continue
            for action in due(session.timers, now):
                await self._act(session.transaction_id, action, now)

    # -- reads for the API ------------------------------------------------------------------------------------

    async def cost(self, transaction_id: int, now: datetime) -> SessionCost:
        """The stored breakdown of an ended session, or what it comes to so far for one in progress.

        Raises:
            NotFound: the session is not priced (no tariff applied) or unknown.
        """
        found = await self._reads.session(transaction_id)
        if found is None or found[0].price is None:
            raise NotFound("cost of transaction", transaction_id)
        session, breakdown = found
        if breakdown is not None:
            return SessionCost(session, breakdown, True)
        live = self._sessions.get(transaction_id, session)
        transaction = await self._storage.get_transaction(transaction_id)
        if transaction is None:
            raise NotFound("transaction", transaction_id)
        ended_at = transaction.stopped_at or now
        usage = await self._usage(live, transaction, ended_at)
        assert live.price is not None
        return SessionCost(live, session_cost(live.price, usage), False)

    # -- handling ---------------------------------------------------------------------------------------------

    async def _start(self, transaction: Transaction, now: datetime) -> None:
        self._transactions[transaction.id] = transaction
        self._by_evse[(transaction.station_id, transaction.evse_id)] = transaction.id
        site_id = self._grid.site_of_station(transaction.station_id)
        price = await self._tariffs.session_price(site_id, transaction.started_at, transaction.reservation_id)
        rules = self.rules(site_id) if site_id is not None else SessionRules()
        grace = price.overstay.grace_minutes if price is not None else 0
        timers = rules.timers(transaction.id, transaction.started_at, grace)
        if price is None and timers.limit_at is None:
            return  # nothing to charge and no time limit: not followed
        account_id = await self._account(transaction.id_token)
        session = TrackedSession(transaction.id, transaction.station_id, site_id, account_id, price, timers)
        await self._storage.write([store.insert_session(session)])
        self._sessions[transaction.id] = session

    async def _end(self, transaction_id: int, now: datetime) -> None:
        ended = self._transactions.pop(transaction_id, None)
        if ended is not None and self._by_evse.get((ended.station_id, ended.evse_id)) == transaction_id:
            del self._by_evse[(ended.station_id, ended.evse_id)]
        self._seen_charging.discard(transaction_id)
        self._stop_retry_at.pop(transaction_id, None)
        session = self._sessions.pop(transaction_id, None)
        if session is None:
            return
        transaction = await self._storage.get_transaction(transaction_id)
        if transaction is None:  # cannot happen: the row was committed before we were told
            log.warning("ended transaction not found", transaction_id=transaction_id)
            return
        ended_at = transaction.stopped_at or now
        usage = await self._usage(session, transaction, ended_at)
        breakdown = session_cost(session.price, usage) if session.price is not None else None
        await self._storage.write([store.set_cost(transaction_id, ended_at, breakdown, usage.energy_wh, now)])
        if breakdown is not None:
            self._publish("session.cost", session, now, _cost_data(breakdown))
            log.info("session cost", transaction_id=transaction_id, total=str(breakdown.total), tier=breakdown.tier)

    async def _charging_state(self, state: _State) -> None:
        transaction_id = state.transaction_id
        if transaction_id is None:
            transaction_id = self._by_evse.get((state.station_id, state.evse_id))
        session = self._sessions.get(transaction_id) if transaction_id is not None else None
        if session is None or transaction_id is None:
            return
        if state.charging:
            self._seen_charging.add(transaction_id)
            timers = session.timers.resumed()
        elif transaction_id in self._seen_charging:
            timers = session.timers.completed(state.at)
        else:
            return
        if timers != session.timers:
            await self._set_timers(session, timers)

    async def _act(self, transaction_id: int, action: Due, now: datetime) -> None:
        session = self._sessions[transaction_id]
        timers = session.timers
        match action:
            case Due.WARN:
                left = (timers.limit_at - now) if timers.limit_at else timedelta(0)
                data = {
                    "limit_at": timers.limit_at,
                    "minutes_left": max(0, round(left.total_seconds() / 60)),
                    "at_limit": timers.at_limit.value,
                }
                self._publish("session.time_warning", session, now, data)
                log.info(
                    "session time limit ahead", transaction_id=transaction_id, station_id=session.station_id, **data
                )
                await self._set_timers(session, replace(timers, warned_at=now))
            case Due.STOP:
                if await self._stop(session, now):
                    await self._set_timers(session, replace(timers, limit_reached_at=now))
            case Due.LIMIT_OVERSTAY:
                log.info("session time limit reached, overstay follows", transaction_id=transaction_id)
                await self._set_timers(session, replace(timers, limit_reached_at=now))
            case Due.OVERSTAY:
                start = overstay_start(timers)
                assert start is not None
                await self._set_timers(session, replace(timers, overstay_started_at=now, overstay_reason=start[1]))
                data = {"overstay_from": start[0], "reason": start[1].value}
                if session.price is not None:
                    data |= {
                        "per_minute": str(session.price.overstay.per_minute),
                        "cap": None if session.price.overstay.cap is None else str(session.price.overstay.cap),
                        "currency": session.price.currency,
                    }
                self._publish("session.overstay", session, now, data)
                log.info("session in overstay", transaction_id=transaction_id, reason=start[1].value)

    async def _stop(self, session: TrackedSession, now: datetime) -> bool:
        """Ask the station to end the session; False (retried later) when it is offline or refuses."""
        retry_at = self._stop_retry_at.get(session.transaction_id)
        if retry_at is not None and now < retry_at:
            return False
        transaction = self._transactions[session.transaction_id]
        command = RemoteStop(transaction.charger_tx_id)
        try:
            result = await self._commands.execute(StationId(session.station_id), command, now)
        except StationError as exc:
            status = str(exc)
        else:
            status = result.status or "no status"
            if result.status == "Accepted":
                log.info("session stopped at its time limit", transaction_id=session.transaction_id)
                return True
        self._stop_retry_at[session.transaction_id] = now + timedelta(seconds=self._settings.stop_retry_seconds)
        log.warning("could not stop session at its time limit", transaction_id=session.transaction_id, why=status)
        return False

    async def _set_timers(self, session: TrackedSession, timers: SessionTimers) -> None:
        await self._storage.write([store.set_timers(timers)])
        self._sessions[session.transaction_id] = replace(session, timers=timers)

    async def _usage(self, session: TrackedSession, transaction: Transaction, ended_at: datetime) -> SessionUsage:
        energy = transaction.energy_wh
        if energy is None:
            readings = await self._reads.energy_readings(transaction.id)
            first = transaction.meter_start_wh
            if readings is not None:
                first = readings[0] if first is None else first
                energy = max(0.0, readings[1] - first)
        start = overstay_start(session.timers)
        return SessionUsage(
            started_at=transaction.started_at,
            ended_at=ended_at,
            energy_wh=energy or 0.0,
            charging_completed_at=session.timers.charging_completed_at,
            overstay_from=start[0] if start else None,
            overstay_reason=start[1].value if start else None,
        )

    async def _account(self, id_token: str | None) -> str | None:
        if id_token is None:
            return None
        record = await self._storage.get_token(id_token)
        return record.owner if record is not None else None

    def _publish(self, kind: str, session: TrackedSession, now: datetime, data: dict[str, Any]) -> None:
        body = {"transaction_id": session.transaction_id, "station_id": session.station_id, "site_id": session.site_id}
        self._events.publish(
            kind,
            now,
            body | data,
            site_ids=frozenset({session.site_id}) if session.site_id else frozenset(),
            account_id=session.account_id,
        )


def _cost_data(cost: CostBreakdown) -> dict[str, Any]:
    return {
        "currency": cost.currency,
        "tier": cost.tier,
        "energy_wh": cost.energy_wh,
        "energy": str(cost.energy),
        "time": str(cost.time),
        "session_fee": str(cost.session_fee),
        "overstay": str(cost.overstay),
        "overstay_minutes": cost.overstay_minutes,
        "total": str(cost.total),
    }
