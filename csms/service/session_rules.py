"""Session rules and the money side of sessions: price fixed at start, time-limit warnings, stop or overstay,
overstay fees and the cost breakdown when a session ends.

It observes chargers (a :class:`~csms.service.charger.ChargingObserver`): observer calls only queue what happened
and wake the loop (``csms.runtime.session_rules``), which calls :meth:`SessionRulesService.process` to store it, a
batch at a time (one read per kind, one commit), and :meth:`SessionRulesService.tick` to act on timers. Every timer
change is committed before it is acted on, so a restart resumes from the database.

Charging completed is taken from what the charger reports: 1.6 StatusNotification SuspendedEV, 2.0.1
TransactionEvent chargingState EVConnected or SuspendedEV, once the session was seen charging (a car that has not
started drawing yet is not done). Charging again before overstay started clears it. The connector is freed (the
car left while the transaction goes on, which ends overstay): 1.6/2.0.1 status Available, 2.0.1 chargingState Idle.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
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
from csms.domain.tariffs import CostBreakdown, SessionPrice, SessionUsage, session_cost
from csms.domain.transactions import Transaction, TransactionState
from csms.errors import NotFound, StationError
from csms.service.commands import CommandService
from csms.service.events import EventBus
from csms.service.grid import GridService
from csms.service.tariffs import TariffService, booked_price
from csms.storage import tariffs as store
from csms.storage.sql import SqlStorage
from csms.storage.tariffs import EndedSession, TariffStore
from csms.storage.writer import Write

__all__ = ["DEFAULT_BATCH", "SessionCost", "SessionRulesService", "cost_summary_data"]

log = structlog.get_logger(__name__)

DEFAULT_BATCH = 500


class _Report(StrEnum):
    """What a charger reported about the car on a connector."""

    CHARGING = "charging"
    COMPLETED = "completed"  # the car stopped drawing (full, or its own limit)
    FREED = "freed"  # the car left: cable unplugged while the transaction goes on


@dataclass(frozen=True, slots=True)
class _Started:
    transaction: Transaction


@dataclass(frozen=True, slots=True)
class _Ended:
    transaction_id: int


@dataclass(frozen=True, slots=True)
class _State:
    """A report about the car on a connector, for the transaction given or the one in progress there: ``at`` by the
    charger's clock, ``received`` by ours."""

    station_id: str
    evse_id: int
    transaction_id: int | None
    report: _Report
    at: datetime
    received: datetime


@dataclass(frozen=True, slots=True)
class _RulesChanged:
    site_id: str


@dataclass(frozen=True, slots=True)
class _Authorized:
    """A token presented after the session started (2.0.1): its owner is the session's driver."""

    transaction_id: int
    id_token: str


_Happening = _Started | _Ended | _State | _RulesChanged | _Authorized


@dataclass(frozen=True, slots=True)
class SessionCost:
    """A session's cost as the API shows it: ``final`` once the session ended and its breakdown is stored."""

    session: TrackedSession
    breakdown: CostBreakdown | None
    final: bool


class _Round:
    """One batch of reports: working copies of what is followed, changed in report order; the writes to commit
    together; what to announce once they are committed. Nothing is kept unless the commit succeeds."""

    def __init__(self, service: SessionRulesService) -> None:
        self.sessions = dict(service._sessions)
        self.transactions = dict(service._transactions)
        self.by_evse = dict(service._by_evse)
        self.seen_charging = set(service._seen_charging)
        self.ended: list[int] = []
        # Writes by kind: a session's row is inserted before its timers change and before its cost is set.
        self.inserts: list[Write] = []
        self.timers: list[Write] = []
        self.costs: list[Write] = []
        self.progress: list[Write] = []
        self.announcements: list[Callable[[], None]] = []

    @property
    def writes(self) -> list[Write]:
        return [*self.inserts, *self.timers, *self.costs, *self.progress]


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
        # Most reports handled (read, computed, committed) as one batch. 1 is the one-at-a-time way (the
        # benchmark's "before").
        self.batch_size = DEFAULT_BATCH
        self.batches = 0
        tariffs.bind_costs(self.cost_summary)

    def bind(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    async def load(self, active: list[Transaction]) -> None:
        """Rules, and the sessions followed: those in progress resume, those that ended uncosted get costed, and
        transactions whose start was committed but never seen here (the process died first) are started now."""
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
        seen = await self._reads.starts_seen()
        for transaction in await self._reads.unfollowed(max(0, seen - store.STARTS_MARGIN)):
            log.info("session start not seen before a restart, handled now", transaction_id=transaction.id)
            self._inbox.append(_Started(transaction))
            if transaction.state is TransactionState.ENDED:
                self._inbox.append(_Ended(transaction.id))

    # -- rules -----------------------------------------------------------------------------------------------

    def rules(self, site_id: str) -> SessionRules:
        """The site's rules (not limited in time when none are configured)."""
        return self._rules.get(site_id, SessionRules())

    async def put_rules(self, site_id: str, rules: SessionRules, now: datetime) -> SessionRules:
        """Store the site's rules; the timers of its sessions in progress are re-armed from their starts by the loop
        (a session already past the new limit is warned and stopped, or moved to overstay, at once)."""
        await self._storage.write([store.put_rules(site_id, rules, now)])
        self._rules[site_id] = rules
        self._push(_RulesChanged(site_id))
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
        report = _REPORT_BY_STATUS.get(state.status)
        if report is not None:
            self._push(_State(state.station_id, state.evse_id, None, report, state.timestamp, now))

    def station_booted(self, station_id: str, now: datetime) -> None:
        self.station_connected(station_id)

    def station_connected(self, station_id: str) -> None:
        """A station (back) online gets the stops that failed while it was away at once, not at their retry time."""
        waiting = [
            transaction_id
            for transaction_id in self._stop_retry_at
            if (transaction := self._transactions.get(transaction_id)) is not None
            and transaction.station_id == station_id
        ]
        for transaction_id in waiting:
            del self._stop_retry_at[transaction_id]
        if waiting:
            self._wake()

    def charging_needs(self, station_id: str, evse_id: int, needs: ChargingNeeds, now: datetime) -> bool:
        return False

    def charging_state(self, transaction: Transaction, state: str, now: datetime) -> None:
        report = _REPORT_BY_CHARGING_STATE.get(state)
        if report is not None:
            # Timed by the charger, as a 1.6 StatusNotification is: an event queued offline and sent later still
            # starts overstay when the car was done, not when the message arrived (_report keeps it sane).
            at = transaction.charging_state_at or now
            self._push(_State(transaction.station_id, transaction.evse_id, transaction.id, report, at, now))

    def transaction_authorized(self, transaction: Transaction, id_token: str, now: datetime) -> None:
        self._push(_Authorized(transaction.id, id_token))

    def _push(self, happening: _Happening) -> None:
        self._inbox.append(happening)
        self._wake()

    # -- the loop's work --------------------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return bool(self._inbox)

    async def process(self, clock: Callable[[], datetime]) -> None:
        """Store what chargers reported since the last call, in order, a batch at a time.

        The clock is read for each batch: reports keep arriving while earlier batches are written, and a batch
        handled after a long drain must not be stamped with the time the drain began.

        A batch is read at once (prices, token owners, ended transactions and their meter readings), worked
        through in memory, and committed as one write. Only then is it kept in memory and announced: if the
        commit fails the batch is handled again next round; if the process dies first, ``load`` finds its
        sessions uncosted (or their starts unseen) and handles them after the restart. A cost is set only on a
        row without one, so each finished transaction is costed once.
        """
        while self._inbox:
            batch = [self._inbox.popleft() for _ in range(min(self.batch_size, len(self._inbox)))]
            try:
                work = await self._work(batch, clock())
                await self._storage.write(work.writes)
            except BaseException:
                self._inbox.extendleft(reversed(batch))  # nothing of it was committed
                raise
            self._keep(work)

    async def tick(self, now: datetime) -> None:
        """Act on every timer that is due: warn, move to overstay, start overstay billing (all committed in one
        write, then announced), and stop sessions at their limit (their stations asked all at once)."""
        writes: list[Write] = []
        changed: dict[int, SessionTimers] = {}
        announcements: list[Callable[[], None]] = []
        stopping: list[int] = []
        for session in self._sessions.values():
            if session.transaction_id not in self._transactions:
                continue
            timers = session.timers
            for action in due(timers, now):
                if action is Due.STOP:
                    stopping.append(session.transaction_id)
                    continue
                timers = self._advance(session, timers, action, now, announcements)
            if timers != session.timers:
                changed[session.transaction_id] = timers
                writes.append(store.set_timers(timers))
        if writes:
            await self._storage.write(writes)
            self._keep_timers(changed)
            for announce in announcements:
                announce()
        if stopping:
            sessions = [self._sessions[transaction_id] for transaction_id in stopping]
            accepted = await asyncio.gather(*(self._stop(session, now) for session in sessions))
            reached = {
                session.transaction_id: replace(session.timers, limit_reached_at=now)
                for session, ok in zip(sessions, accepted, strict=True)
                if ok
            }
            if reached:
                await self._storage.write([store.set_timers(timers) for timers in reached.values()])
                self._keep_timers(reached)

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
        ended = (await self._reads.ended_sessions([transaction_id])).get(transaction_id)
        if ended is None:
            raise NotFound("transaction", transaction_id)
        assert live.price is not None
        if live.price.source != "booking" and ended.booked_quote is not None:  # matched to a booking by token
            live = replace(live, price=booked_price(ended.booked_quote, live.price))
        assert live.price is not None
        usage = _usage(live, ended, ended.transaction.stopped_at or now)
        return SessionCost(live, session_cost(live.price, usage), False)

    async def cost_summary(self, transaction_id: int, now: datetime) -> dict[str, Any] | None:
        """The cost of a session as plain data (None when no tariff applied or the transaction is unknown)."""
        try:
            cost = await self.cost(transaction_id, now)
        except NotFound:
            return None
        return cost_summary_data(cost)

    # -- a batch ----------------------------------------------------------------------------------------------

    async def _work(self, batch: list[_Happening], now: datetime) -> _Round:
        starts = [happening.transaction for happening in batch if isinstance(happening, _Started)]
        started_ids = {transaction.id for transaction in starts}
        ended_ids = [
            h.transaction_id
            for h in batch
            if isinstance(h, _Ended) and (h.transaction_id in self._sessions or h.transaction_id in started_ids)
        ]
        changed_sites = {h.site_id for h in batch if isinstance(h, _RulesChanged)}
        sites = [self._grid.site_of_station(transaction.station_id) for transaction in starts]
        prices = await self._tariffs.session_prices(
            [(site, t.started_at, t.reservation_id) for site, t in zip(sites, starts, strict=True)]
        )
        tokens = [t.id_token for t in starts if t.id_token]
        tokens += [h.id_token for h in batch if isinstance(h, _Authorized)]
        if changed_sites:  # sessions not followed so far may get a time limit now: whose are they?
            tokens += [t.id_token for t in self._transactions.values() if t.id_token and t.id not in self._sessions]
        owners = await self._reads.token_owners(tokens)
        ended = await self._reads.ended_sessions(ended_ids)
        work = _Round(self)
        priced = iter(zip(sites, prices, strict=True))
        for happening in batch:
            match happening:
                case _Started(transaction):
                    site_id, price = next(priced)
                    self._start(work, transaction, site_id, price, owners)
                case _Ended(transaction_id):
                    self._end(work, transaction_id, ended.get(transaction_id), now)
                case _State():
                    self._report(work, happening)
                case _RulesChanged(site_id):
                    self._rearm(work, site_id, owners, now)
                case _Authorized(transaction_id, id_token):
                    self._authorized(work, transaction_id, id_token, owners)
        if started_ids:
            work.progress.append(store.set_starts_seen(max(started_ids)))
        return work

    def _keep(self, work: _Round) -> None:
        """The batch is committed: it becomes what is followed, and is announced."""
        self._sessions, self._transactions = work.sessions, work.transactions
        self._by_evse, self._seen_charging = work.by_evse, work.seen_charging
        for transaction_id in work.ended:
            self._stop_retry_at.pop(transaction_id, None)
        self.batches += 1
        for announce in work.announcements:
            announce()

    def _start(
        self,
        work: _Round,
        transaction: Transaction,
        site_id: str | None,
        price: SessionPrice | None,
        owners: dict[str, str | None],
    ) -> None:
        work.transactions[transaction.id] = transaction
        work.by_evse[(transaction.station_id, transaction.evse_id)] = transaction.id
        rules = self.rules(site_id) if site_id is not None else SessionRules()
        grace = price.overstay.grace_minutes if price is not None else 0
        timers = rules.timers(transaction.id, transaction.started_at, grace)
        account_id = owners.get(transaction.id_token) if transaction.id_token else None
        session = TrackedSession(transaction.id, transaction.station_id, site_id, account_id, price, timers)
        if price is None and timers.limit_at is None:
            # Nothing to charge and no time limit: not followed. The closed row records that the start was seen.
            work.inserts.append(store.insert_session(session, closed_at=transaction.started_at))
            return
        work.inserts.append(store.insert_session(session))
        work.sessions[transaction.id] = session

    def _end(self, work: _Round, transaction_id: int, ended: EndedSession | None, now: datetime) -> None:
        transaction = work.transactions.pop(transaction_id, None)
        if (
            transaction is not None
            and work.by_evse.get((transaction.station_id, transaction.evse_id)) == transaction_id
        ):
            del work.by_evse[(transaction.station_id, transaction.evse_id)]
        work.seen_charging.discard(transaction_id)
        work.ended.append(transaction_id)
        session = work.sessions.pop(transaction_id, None)
        if session is None:
            return
        if ended is None:  # cannot happen: the row was committed before we were told
            log.warning("ended transaction not found", transaction_id=transaction_id)
            return
        ended_at = ended.transaction.stopped_at or now
        if session.price is not None and session.price.source != "booking" and ended.booked_quote is not None:
            # Matched to a booking after its start (by token, without the reservation id): the booked price holds.
            price = booked_price(ended.booked_quote, session.price)
            session = replace(session, price=price)
            work.timers.append(store.set_price(transaction_id, price))
        usage = _usage(session, ended, ended_at)
        breakdown = session_cost(session.price, usage) if session.price is not None else None
        work.costs.append(store.set_cost(transaction_id, ended_at, breakdown, usage.energy_wh, now))
        if breakdown is not None:
            work.announcements.append(lambda: self._announce_cost(session, breakdown, now))

    def _report(self, work: _Round, state: _State) -> None:
        transaction_id = state.transaction_id
        if transaction_id is None:
            transaction_id = work.by_evse.get((state.station_id, state.evse_id))
        session = work.sessions.get(transaction_id) if transaction_id is not None else None
        if session is None or transaction_id is None:
            return
        # The charger's time (a report queued offline counts from when it happened), unless that cannot be right:
        # before the session started or after the report arrived, the charger's clock is off, and the arrival is
        # the safer guess (it never bills overstay for time the charger made up).
        at = state.at if session.timers.started_at <= state.at <= state.received else state.received
        match state.report:
            case _Report.CHARGING:
                work.seen_charging.add(transaction_id)
                timers = session.timers.resumed()
            case _Report.COMPLETED if transaction_id in work.seen_charging:
                timers = session.timers.completed(at)
            case _Report.FREED:
                timers = session.timers.freed(at)
            case _:
                return
        if timers != session.timers:
            work.sessions[transaction_id] = replace(session, timers=timers)
            work.timers.append(store.set_timers(timers))

    def _authorized(self, work: _Round, transaction_id: int, id_token: str, owners: dict[str, str | None]) -> None:
        """The token came after the start: its owner sees the cost and gets the warnings (if none was known)."""
        transaction = work.transactions.get(transaction_id)
        if transaction is not None and transaction.id_token is None:
            work.transactions[transaction_id] = replace(transaction, id_token=id_token)
        session = work.sessions.get(transaction_id)
        account_id = owners.get(id_token)
        if session is None or session.account_id is not None or account_id is None:
            return
        work.sessions[transaction_id] = replace(session, account_id=account_id)
        work.timers.append(store.set_account(transaction_id, account_id))

    def _rearm(self, work: _Round, site_id: str, owners: dict[str, str | None], now: datetime) -> None:
        """The site's rules changed: its sessions in progress are timed by them, from their starts."""
        rules = self.rules(site_id)
        for transaction in work.transactions.values():
            if self._grid.site_of_station(transaction.station_id) != site_id:
                continue
            session = work.sessions.get(transaction.id)
            if session is None:
                timers = rules.timers(transaction.id, transaction.started_at, 0)
                if timers.limit_at is None:
                    continue
                account_id = owners.get(transaction.id_token) if transaction.id_token else None
                session = TrackedSession(transaction.id, transaction.station_id, site_id, account_id, None, timers)
                work.sessions[transaction.id] = session
                work.seen_charging.add(transaction.id)  # whether it charged was not followed: assume it did
                work.inserts.append(store.insert_session(session, reopen=True))
                continue
            timers = session.timers.rearmed(rules, now)
            if timers != session.timers:
                work.sessions[transaction.id] = replace(session, timers=timers)
                work.timers.append(store.set_timers(timers))
        log.info("session rules re-armed", site_id=site_id, max_charging_minutes=rules.max_charging_minutes)

    # -- timers -----------------------------------------------------------------------------------------------

    def _advance(
        self,
        session: TrackedSession,
        timers: SessionTimers,
        action: Due,
        now: datetime,
        announcements: list[Callable[[], None]],
    ) -> SessionTimers:
        """The timers once a due warning or overstay step is taken; what to announce once that is committed."""
        transaction_id = session.transaction_id
        match action:
            case Due.WARN:
                left = (timers.limit_at - now) if timers.limit_at else timedelta(0)
                data: dict[str, Any] = {
                    "limit_at": timers.limit_at,
                    "minutes_left": max(0, round(left.total_seconds() / 60)),
                    "at_limit": timers.at_limit.value,
                }

                def warn() -> None:
                    self._publish("session.time_warning", session, now, data)
                    log.info(
                        "session time limit ahead", transaction_id=transaction_id, station_id=session.station_id, **data
                    )

                announcements.append(warn)
                return replace(timers, warned_at=now)
            case Due.LIMIT_OVERSTAY:
                announcements.append(
                    lambda: log.info("session time limit reached, overstay follows", transaction_id=transaction_id)
                )
                return replace(timers, limit_reached_at=now)
            case Due.OVERSTAY:
                start = overstay_start(timers)
                assert start is not None
                details: dict[str, Any] = {"overstay_from": start[0], "reason": start[1].value}
                if session.price is not None:
                    details |= {
                        "per_minute": str(session.price.overstay.per_minute),
                        "cap": None if session.price.overstay.cap is None else str(session.price.overstay.cap),
                        "currency": session.price.currency,
                    }

                def overstay() -> None:
                    self._publish("session.overstay", session, now, details)
                    log.info("session in overstay", transaction_id=transaction_id, reason=details["reason"])

                announcements.append(overstay)
                return replace(timers, overstay_started_at=now, overstay_reason=start[1])
            case _:
                return timers

    def _keep_timers(self, changed: dict[int, SessionTimers]) -> None:
        for transaction_id, timers in changed.items():
            current = self._sessions.get(transaction_id)
            if current is not None:
                self._sessions[transaction_id] = replace(current, timers=timers)

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

    def _announce_cost(self, session: TrackedSession, breakdown: CostBreakdown, now: datetime) -> None:
        self._publish("session.cost", session, now, _cost_data(breakdown))
        log.info("session cost", transaction_id=session.transaction_id, total=str(breakdown.total), tier=breakdown.tier)

    def _publish(self, kind: str, session: TrackedSession, now: datetime, data: dict[str, Any]) -> None:
        body = {"transaction_id": session.transaction_id, "station_id": session.station_id, "site_id": session.site_id}
        self._events.publish(
            kind,
            now,
            body | data,
            site_ids=frozenset({session.site_id}) if session.site_id else frozenset(),
            account_id=session.account_id,
        )


_REPORT_BY_STATUS = {
    ConnectorStatus.CHARGING: _Report.CHARGING,
    ConnectorStatus.SUSPENDED_EV: _Report.COMPLETED,
    # 1.6 (and 2.0.1 StatusNotification) Available while a transaction goes on: the cable was unplugged.
    ConnectorStatus.AVAILABLE: _Report.FREED,
}
_REPORT_BY_CHARGING_STATE = {
    "Charging": _Report.CHARGING,
    "EVConnected": _Report.COMPLETED,
    "SuspendedEV": _Report.COMPLETED,
    # 2.0.1 Idle: no EV connected (sent with triggerReason EVCommunicationLost / EVDeparted when the cable is
    # unplugged and the transaction goes on, e.g. TxStopPoint ParkingBayOccupancy).
    "Idle": _Report.FREED,
}


def _usage(session: TrackedSession, ended: EndedSession, ended_at: datetime) -> SessionUsage:
    transaction = ended.transaction
    energy = transaction.energy_wh
    if energy is None and ended.readings is not None:
        first = transaction.meter_start_wh
        first = ended.readings[0] if first is None else first
        energy = max(0.0, ended.readings[1] - first)
    start = overstay_start(session.timers)
    return SessionUsage(
        started_at=transaction.started_at,
        ended_at=ended_at,
        energy_wh=energy or 0.0,
        charging_completed_at=session.timers.charging_completed_at,
        overstay_from=start[0] if start else None,
        overstay_reason=start[1].value if start else None,
        connector_freed_at=session.timers.connector_freed_at,
    )


def cost_summary_data(cost: SessionCost) -> dict[str, Any]:
    """A session's cost as JSON-ready data: the shape of ``GET /transactions/{id}/cost``, plus whose it is
    (``site_id``, ``account_id``: what the API checks before showing it) and when the car left the connector."""
    session, breakdown = cost.session, cost.breakdown
    assert session.price is not None and breakdown is not None
    prices = session.price.prices
    return {
        "transaction_id": session.transaction_id,
        "site_id": session.site_id,
        "account_id": session.account_id,
        "final": cost.final,
        "currency": breakdown.currency,
        "tier": breakdown.tier,
        "price_source": breakdown.source,
        "prices": {
            "energy_per_kwh": str(prices.energy_per_kwh),
            "time_per_hour": str(prices.time_per_hour),
            "session_fee": str(prices.session_fee),
        },
        "energy_wh": breakdown.energy_wh,
        "energy": str(breakdown.energy),
        "time_basis": breakdown.time_basis.value,
        "time_seconds": breakdown.time_seconds,
        "time": str(breakdown.time),
        "session_fee": str(breakdown.session_fee),
        "overstay": {
            "minutes": breakdown.overstay_minutes,
            "fee": str(breakdown.overstay),
            "reason": breakdown.overstay_reason,
            "started_at": breakdown.overstay_started_at,
            "connector_freed_at": session.timers.connector_freed_at,
        },
        "total": str(breakdown.total),
    }


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
