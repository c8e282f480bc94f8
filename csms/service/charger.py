"""What the central system does when a charger reports something. Version-neutral; called by the adapters.

Every method commits its effects before it returns, so the adapter's reply never promises more than is stored.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import structlog

from csms.domain.ev_charging import ChargingNeeds
from csms.domain.metering import MeterSample, energy_wh
from csms.domain.seq_numbers import with_event
from csms.domain.stations import (
    ConnectorState,
    RegistrationStatus,
    StationId,
    StationInfo,
    decide_boot,
)
from csms.domain.tokens import IdTokenInfo, IdTokenRecord, authorize
from csms.domain.transactions import Transaction, TransactionStart, TransactionState, TransactionStop
from csms.service.state import HotState
from csms.storage import sql
from csms.storage.availability import record_status
from csms.storage.sql import SqlStorage, VariableRow
from csms.storage.writer import Write

__all__ = [
    "AuthorizationObserver",
    "BootResult",
    "ChargerService",
    "ChargingObserver",
    "ReservationObserver",
    "StationPolicy",
    "TransactionReply",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StationPolicy:
    auto_register: bool
    unknown_station_status: RegistrationStatus
    heartbeat_interval: int
    allow_unknown_tokens: bool


@dataclass(frozen=True, slots=True)
class BootResult:
    status: RegistrationStatus
    interval: int


@dataclass(frozen=True, slots=True)
class TransactionReply:
    transaction: Transaction
    id_token_info: IdTokenInfo | None


class ChargingObserver(Protocol):
    """Told what chargers reported, after it is committed (smart charging listens). Must be cheap and not raise."""

    def transaction_started(self, transaction: Transaction, now: datetime) -> None: ...

    def transaction_ended(self, transaction: Transaction, now: datetime) -> None: ...

    def metered(self, station_id: str, evse_id: int, samples: tuple[MeterSample, ...], now: datetime) -> None: ...

    def connector_changed(self, state: ConnectorState, now: datetime) -> None: ...

    def station_booted(self, station_id: str, now: datetime) -> None: ...

    def charging_needs(self, station_id: str, evse_id: int, needs: ChargingNeeds, now: datetime) -> bool:
        """True when a charging schedule will follow."""
        ...

    def charging_state(self, transaction: Transaction, state: str, now: datetime) -> None:
        """A 2.0.1 TransactionEvent reported the transaction's chargingState (Charging, EVConnected, ...)."""
        ...


class ReservationObserver(Protocol):
    """Told when a charger reports a reservation's end (2.0.1 ReservationStatusUpdate), after it is committed."""

    def reservation_changed(self, station_id: str, reservation_id: int, status: str, now: datetime) -> None: ...


class AuthorizationObserver(Protocol):
    """Told when a transaction in progress gets its id token late (2.0.1: the driver authorised after the Started
    event, which carried none), after the event is committed. Bookings match such a session by its token."""

    def transaction_authorized(self, transaction: Transaction, id_token: str, now: datetime) -> None: ...


class _Observers:
    """Every observer added, told in the order they were added (smart charging, live events, ...)."""

    def __init__(self) -> None:
        self.observers: list[ChargingObserver] = []

    def transaction_started(self, transaction: Transaction, now: datetime) -> None:
        for observer in self.observers:
            observer.transaction_started(transaction, now)

    def transaction_ended(self, transaction: Transaction, now: datetime) -> None:
        for observer in self.observers:
            observer.transaction_ended(transaction, now)

    def metered(self, station_id: str, evse_id: int, samples: tuple[MeterSample, ...], now: datetime) -> None:
        for observer in self.observers:
            observer.metered(station_id, evse_id, samples, now)

    def connector_changed(self, state: ConnectorState, now: datetime) -> None:
        for observer in self.observers:
            observer.connector_changed(state, now)

    def station_booted(self, station_id: str, now: datetime) -> None:
        for observer in self.observers:
            observer.station_booted(station_id, now)

    def charging_needs(self, station_id: str, evse_id: int, needs: ChargingNeeds, now: datetime) -> bool:
        # Every observer hears the needs; a schedule follows if any of them will send one.
        answers = [observer.charging_needs(station_id, evse_id, needs, now) for observer in self.observers]
        return any(answers)

    def charging_state(self, transaction: Transaction, state: str, now: datetime) -> None:
        for observer in self.observers:
            observer.charging_state(transaction, state, now)


class ChargerService:
    def __init__(self, storage: SqlStorage, policy: StationPolicy, observer: ChargingObserver | None = None) -> None:
        self._storage = storage
        self._policy = policy
        self._observer = _Observers()
        if observer is not None:
            self._observer.observers.append(observer)
        self._reservations: ReservationObserver | None = None
        self._authorizations: list[AuthorizationObserver] = []
        self._state = HotState()
        self._transaction_ids = itertools.count(1)

    async def load(self) -> None:
        """Fill the hot state from the database; call once before serving."""
        self._state.registrations.update(await self._storage.registrations())
        for transaction in await self._storage.active_transactions():
            self._state.started(transaction)
        # A charger killed mid-conversation with us resends the message it got no reply for. If it was committed
        # before the crash, the in-memory "last stored readings" that drop such a resend died with the process:
        # seed them from the database, or a resent 1.6 MeterValues is stored twice (kill -9 runs, BENCHMARKS.md).
        for station_id, evse_id, sample in await self._storage.last_readings_of_active_transactions():
            self._state.readings_stored(station_id, evse_id, (sample,))
        # One process owns the database, so ids can be handed out in memory before the row is written;
        # that keeps StartTransaction a pure insert inside the group commit.
        self._transaction_ids = itertools.count(await self._storage.max_transaction_id() + 1)

    @property
    def policy(self) -> StationPolicy:
        return self._policy

    @property
    def active_transactions(self) -> int:
        return self._state.active_count

    def registration(self, station_id: str) -> RegistrationStatus | None:
        return self._state.registrations.get(station_id)

    def observe(self, observer: ChargingObserver) -> None:
        """Add an observer: each is told what chargers report, after it is committed."""
        self._observer.observers.append(observer)

    def observe_reservations(self, observer: ReservationObserver) -> None:
        self._reservations = observer

    def observe_authorizations(self, observer: AuthorizationObserver) -> None:
        self._authorizations.append(observer)

    def active(self) -> list[Transaction]:
        """Every transaction in progress."""
        return self._state.all_active()

    def known_token(self, token: str) -> IdTokenRecord | None:
        """A token's record as last read (a session's token was read when it started); None when not known."""
        return self._state.token(token)[1]

    async def set_registration(self, station_id: str, status: RegistrationStatus) -> None:
        await self._storage.write([sql.set_station_field(station_id, "registration", status.value)])
        self._state.registrations[station_id] = status

    async def put_token(self, record: IdTokenRecord, now: datetime) -> None:
        await self._storage.write([sql.upsert_token(record, now)])
        self._state.remember_token(record.token, record)

    async def delete_token(self, token: str) -> None:
        await self._storage.write([sql.delete_token(token)])
        self._state.forget_token(token)

    async def boot(self, station_id: StationId, protocol: str, info: StationInfo, now: datetime) -> BootResult:
        known = self._state.registrations.get(station_id)
        decision = decide_boot(known, self._policy.auto_register, self._policy.unknown_station_status)
        await self._storage.write([sql.record_boot(station_id, protocol, info, decision.status, now)])
        self._state.registrations[station_id] = decision.status
        if decision.register:
            log.info("station registered", station_id=station_id, status=decision.status.value)
        if decision.status is RegistrationStatus.ACCEPTED:
            self._observer.station_booted(station_id, now)
        return BootResult(decision.status, self._policy.heartbeat_interval)

    async def heartbeat(self, station_id: StationId, now: datetime) -> None:
        await self._storage.write([sql.touch_station(station_id, now)])

    async def connector_status(self, state: ConnectorState, now: datetime) -> None:
        # The history row goes in the same commit as the current status: utilisation never misses a change.
        history = record_status(state, now)
        await self._storage.write([sql.record_connector(state), sql.touch_station(state.station_id, now), history])
        self._observer.connector_changed(state, now)

    async def authorize(self, station_id: StationId, token: str, now: datetime) -> IdTokenInfo:
        return authorize(await self._token(token), now, self._policy.allow_unknown_tokens)

    async def start_transaction(
        self, start: TransactionStart, now: datetime, samples: tuple[MeterSample, ...] = (), started: bool = True
    ) -> TransactionReply:
        """Store a new transaction, or find the one a replayed start already created (idempotent).

        ``started``: ``start`` is the charger's Started (or 1.6 StartTransaction), not a later event standing in
        for one that never arrived."""
        existing = await self._find_started(start)
        info = await self._check_token(start.station_id, start.id_token, now)
        if existing is not None:
            if start.charger_tx_id is not None and start.timestamp < existing.started_at:
                existing = await self._started_earlier(existing, start, info, samples)
            if start.seq_no is not None and started:
                existing = await self._saw_seq_no(existing, start.seq_no, start.timestamp, started=True)
            return TransactionReply(existing, info)
        transaction = self._new_transaction(start, started)
        writes = [
            sql.insert_transaction(transaction, info.status.value if info else None, start.offline),
            sql.touch_station(start.station_id, now),
            *sql.meter_value_writes(start.station_id, start.evse_id, transaction.id, samples),
        ]
        if start.reservation_id is not None:
            # The reservation is consumed by this transaction: it no longer holds the connector.
            writes.append(sql.set_reservation_status(start.reservation_id, "Used", now))
        await self._storage.write(writes)
        self._state.forget_readings(start.station_id, start.evse_id)
        self._state.started(transaction)
        self._state.readings_stored(start.station_id, start.evse_id, samples)
        self._observer.transaction_started(transaction, now)
        if samples:
            self._observer.metered(start.station_id, start.evse_id, samples, now)
        if start.charging_state is not None:
            self._observer.charging_state(transaction, start.charging_state, now)
        return TransactionReply(transaction, info)

    async def update_transaction(
        self,
        start: TransactionStart,
        samples: tuple[MeterSample, ...],
        now: datetime,
    ) -> TransactionReply:
        """A 2.0.1 TransactionEvent Updated; creates the transaction if its Started event never arrived."""
        assert start.charger_tx_id is not None
        transaction = await self.find_transaction(start.station_id, start.charger_tx_id)
        info = await self._check_token(start.station_id, start.id_token, now)
        writes: list[Write] = [sql.touch_station(start.station_id, now)]
        is_new = transaction is None
        late_token = owner_token = None
        tell_state = start.charging_state is not None  # a new transaction's state is its first
        progressed = transaction
        if transaction is None:
            transaction = self._new_transaction(start, started=False)
            writes.append(sql.insert_transaction(transaction, info.status.value if info else None, True))
        else:
            progressed = transaction
            if start.seq_no is not None:
                # Every event not received before is applied, whatever its number (csms.domain.seq_numbers).
                progressed, fresh = with_event(transaction, start.seq_no, start.timestamp)
                if not fresh:
                    return TransactionReply(transaction, info)  # a replay: answered again, nothing of it applied
            if transaction.state is TransactionState.ENDED:
                await self._late_event(transaction, progressed, start, samples, now)
                return TransactionReply(progressed, info)
            tell_state = _is_newer_charging_state(transaction, start)
            if tell_state:
                progressed = replace(progressed, charging_state=start.charging_state, charging_state_at=start.timestamp)
            if progressed is not transaction:
                writes.append(sql.transaction_progress(progressed))
            if start.id_token and start.id_token != transaction.id_token:
                late_token = start.id_token  # observers hear of every new token (a booking may be matched by it)
                if transaction.id_token is None and info is not None and info.status.value == "Accepted":
                    # The first accepted token makes the session its owner's (listed for the driver, priced for them).
                    writes.append(sql.transaction_token(transaction.id, late_token, info.status.value))
                    owner_token = late_token
        samples = self._state.unseen(start.station_id, transaction.evse_id, samples)
        writes += sql.meter_value_writes(start.station_id, transaction.evse_id, transaction.id, samples)
        await self._storage.write(writes)
        self._state.readings_stored(start.station_id, transaction.evse_id, samples)
        if is_new:
            self._state.started(transaction)
            self._observer.transaction_started(transaction, now)
        else:
            assert progressed is not None
            transaction = self._state.progressed(progressed)
            if owner_token is not None:
                transaction = self._state.authorized(transaction, owner_token)
        if samples:
            self._observer.metered(start.station_id, transaction.evse_id, samples, now)
        if tell_state and start.charging_state is not None:
            self._observer.charging_state(transaction, start.charging_state, now)
        if late_token is not None:
            for authorizations in self._authorizations:
                authorizations.transaction_authorized(transaction, late_token, now)
        return TransactionReply(transaction, info)

    async def stop_transaction(
        self, station_id: StationId, transaction: Transaction, stop: TransactionStop, now: datetime
    ) -> IdTokenInfo | None:
        """End ``transaction``; a stop replayed for an ended transaction is answered again, not re-applied."""
        info = await self._check_token(station_id, stop.id_token, now) if stop.id_token else None
        if transaction.state is TransactionState.ENDED:
            return info
        meter_stop = stop.meter_stop_wh
        if meter_stop is None:
            meter_stop = _last_energy(stop.samples)
        samples = self._state.unseen(station_id, transaction.evse_id, stop.samples)
        writes = [
            sql.stop_transaction(transaction.id, stop.timestamp, meter_stop, stop.reason, stop.id_token, stop.seq_no),
            sql.touch_station(station_id, now),
            *sql.meter_value_writes(station_id, transaction.evse_id, transaction.id, samples),
        ]
        ended = replace(transaction, state=TransactionState.ENDED)
        if stop.seq_no is not None:
            # 2.0.1: the end settles which of the transaction's events never arrived.
            ended, _ = with_event(ended, stop.seq_no, stop.timestamp)
            writes.append(sql.transaction_progress(ended))
        await self._storage.write(writes)
        if ended.seq_no_gaps is not None:
            log.warning(
                "transaction events missing",
                station_id=station_id,
                transaction_id=transaction.id,
                charger_tx_id=transaction.charger_tx_id,
                missing_seq_nos=ended.seq_no_gaps,
            )
        self._state.ended(transaction)
        self._state.forget_readings(station_id, transaction.evse_id)
        self._observer.transaction_ended(transaction, now)
        return info

    async def find_transaction(self, station_id: StationId, charger_tx_id: str) -> Transaction | None:
        """A transaction by the charger's id: in progress from memory, older ones from the database."""
        active = self._state.active(station_id, charger_tx_id)
        if active is not None:
            return active
        return await self._storage.find_transaction(station_id, charger_tx_id)

    async def end_started_transaction(
        self, start: TransactionStart, stop: TransactionStop, now: datetime
    ) -> TransactionReply:
        """A 2.0.1 Ended event for a transaction we never saw start: store both ends at once."""
        reply = await self.start_transaction(start, now, started=False)
        await self.stop_transaction(start.station_id, reply.transaction, stop, now)
        return reply

    async def meter_values(
        self,
        station_id: StationId,
        evse_id: int,
        transaction_id: int | None,
        samples: tuple[MeterSample, ...],
        now: datetime,
    ) -> None:
        samples = self._state.unseen(station_id, evse_id, samples)
        writes = sql.meter_value_writes(station_id, evse_id, transaction_id, samples)
        await self._storage.write([*writes, sql.touch_station(station_id, now)])
        self._state.readings_stored(station_id, evse_id, samples)
        if samples:
            self._observer.metered(station_id, evse_id, samples, now)

    async def record_event(
        self,
        station_id: StationId,
        action: str,
        payload: dict[str, Any],
        now: datetime,
        station_field: tuple[str, str] | None = None,
    ) -> None:
        """Keep a charger notification verbatim; ``station_field`` also updates a status column."""
        writes = [sql.record_event(station_id, action, payload, now), sql.touch_station(station_id, now)]
        if station_field is not None:
            writes.append(sql.set_station_field(station_id, *station_field))
        await self._storage.write(writes)

    async def ev_charging_needs(
        self, station_id: StationId, evse_id: int, needs: ChargingNeeds, payload: dict[str, Any], now: datetime
    ) -> bool:
        """Keep a car's charging needs; True when smart charging will send it a schedule."""
        await self._storage.write([sql.record_event(station_id, "NotifyEVChargingNeeds", payload, now)])
        return self._observer.charging_needs(station_id, evse_id, needs, now)

    async def report_variables(
        self, station_id: StationId, payload: dict[str, Any], rows: list[VariableRow], now: datetime
    ) -> None:
        writes = [sql.record_event(station_id, "NotifyReport", payload, now)]
        writes += [sql.record_variable(station_id, row, now) for row in rows]
        await self._storage.write(writes)

    async def reservation_status(
        self, station_id: StationId, reservation_id: int, status: str, payload: dict[str, Any], now: datetime
    ) -> None:
        await self._storage.write(
            [
                sql.record_event(station_id, "ReservationStatusUpdate", payload, now),
                sql.set_reservation_status(reservation_id, status, now),
            ]
        )
        if self._reservations is not None:
            self._reservations.reservation_changed(station_id, reservation_id, status, now)

    # -- helpers -----------------------------------------------------------------------------------------

    async def _started_earlier(
        self,
        transaction: Transaction,
        start: TransactionStart,
        info: IdTokenInfo | None,
        samples: tuple[MeterSample, ...],
    ) -> Transaction:
        """A 2.0.1 Started that arrives after a later event of its transaction (an offline queue replayed out of
        order) moves the start back to the charger's time and adds what it carried (readings, a missing token).

        Observers keep the start they were first told (pricing and session timers follow the first report)."""
        writes = [sql.transaction_started_at(transaction.id, start.timestamp, start.meter_start_wh)]
        token = start.id_token if transaction.id_token is None else None
        if token is not None:
            writes.append(sql.transaction_token(transaction.id, token, info.status.value if info else None))
        samples = self._state.unseen(start.station_id, transaction.evse_id, samples)
        writes += sql.meter_value_writes(start.station_id, transaction.evse_id, transaction.id, samples)
        await self._storage.write(writes)
        self._state.readings_stored(start.station_id, transaction.evse_id, samples)
        meter_start = transaction.meter_start_wh if start.meter_start_wh is None else start.meter_start_wh
        moved = replace(transaction, started_at=start.timestamp, meter_start_wh=meter_start)
        if transaction.state is TransactionState.ENDED:
            return moved
        moved = self._state.restarted(transaction, moved)
        return self._state.authorized(moved, token) if token is not None else moved

    async def _saw_seq_no(
        self, transaction: Transaction, number: int, at: datetime, started: bool = False
    ) -> Transaction:
        """Record that event ``number`` (stamped ``at``) of ``transaction`` arrived (nothing else of it is applied)."""
        updated, _ = with_event(transaction, number, at, started)
        if updated == transaction:
            return transaction
        await self._storage.write([sql.transaction_progress(updated)])
        if updated.state is TransactionState.ENDED:
            self._log_late_event(transaction, updated, number)
            return updated
        return self._state.progressed(updated)

    async def _late_event(
        self,
        transaction: Transaction,
        updated: Transaction,
        start: TransactionStart,
        samples: tuple[MeterSample, ...],
        now: datetime,
    ) -> None:
        """A 2.0.1 Updated of ``transaction`` arriving after its end (an offline queue sent out of order): its
        readings are the transaction's and are stored, and it is no longer missing. What it said about the car or
        the driver is older than the end: nothing else of it is applied, and no observer is told (the EVSE may
        serve another car by now)."""
        writes = [sql.transaction_progress(updated), sql.touch_station(start.station_id, now)]
        writes += sql.meter_value_writes(start.station_id, transaction.evse_id, transaction.id, samples)
        await self._storage.write(writes)
        if start.seq_no is not None:
            self._log_late_event(transaction, updated, start.seq_no)

    @staticmethod
    def _log_late_event(transaction: Transaction, updated: Transaction, number: int) -> None:
        if updated.seq_no_gaps != transaction.seq_no_gaps:
            log.info(
                "late transaction event",
                station_id=transaction.station_id,
                transaction_id=transaction.id,
                seq_no=number,
                missing_seq_nos=updated.seq_no_gaps,
            )

    async def _find_started(self, start: TransactionStart) -> Transaction | None:
        if start.charger_tx_id is not None:
            return await self.find_transaction(start.station_id, start.charger_tx_id)
        # A 1.6 charger replays a start only while it waits for its transactionId, so the transaction is
        # still in progress: the in-memory index is enough.
        return self._state.replayed_start(start.station_id, start.evse_id, start.timestamp, start.id_token)

    async def _token(self, token: str) -> IdTokenRecord | None:
        known, record = self._state.token(token)
        if not known:
            record = await self._storage.get_token(token)
            self._state.remember_token(token, record)
        return record

    async def _check_token(self, station_id: StationId, token: str | None, now: datetime) -> IdTokenInfo | None:
        if token is None:
            return None
        record = await self._token(token)
        busy = record is not None and self._state.token_busy_elsewhere(token, station_id)
        return authorize(record, now, self._policy.allow_unknown_tokens, has_other_active_transaction=busy)

    def _new_transaction(self, start: TransactionStart, started: bool) -> Transaction:
        transaction_id = next(self._transaction_ids)
        transaction = Transaction(
            id=transaction_id,
            station_id=start.station_id,
            evse_id=start.evse_id,
            connector_id=start.connector_id,
            charger_tx_id=start.charger_tx_id or str(transaction_id),
            id_token=start.id_token,
            started_at=start.timestamp,
            meter_start_wh=start.meter_start_wh,
            state=TransactionState.ACTIVE,
            reservation_id=start.reservation_id,
        )
        if start.charging_state is not None:
            transaction = replace(transaction, charging_state=start.charging_state, charging_state_at=start.timestamp)
        # 2.0.1: with_event sets last_seq_no too (a row with only last_seq_no is read as complete up to it).
        return (
            transaction if start.seq_no is None else with_event(transaction, start.seq_no, start.timestamp, started)[0]
        )


def _is_newer_charging_state(transaction: Transaction, event: TransactionStart) -> bool:
    """``event`` reports a chargingState newer than the one stored (by the charger's timestamps; at the same instant
    the later arrival wins, like connector statuses). An Updated sent late from an offline queue must not undo what
    a newer event said (a car that finished charging would be taken as charging again)."""
    if event.charging_state is None:
        return False
    return transaction.charging_state_at is None or event.timestamp >= transaction.charging_state_at


def _last_energy(samples: tuple[MeterSample, ...]) -> float | None:
    readings = [wh for wh in (energy_wh(sample) for sample in samples) if wh is not None]
    return readings[-1] if readings else None
