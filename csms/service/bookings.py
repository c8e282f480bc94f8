"""Slot bookings: placement on a fitting connector, capacity holds, ReserveNow ahead of the slot, no-shows, rules.

State lives in the database; the bookings that still occupy a slot (scheduled, reserved, active) are also kept in
memory, so placement, capacity holds and charger events need no read. Every change is committed before the
in-memory copy moves, under one lock, so two requests can never both take the same slot. Calls to chargers
(ReserveNow, CancelReservation) are made outside the lock; their answers are applied under it afterwards.

Charger events arrive synchronously from :class:`~csms.service.charger.ChargerService` (after their commit) and are
queued; the runtime loop (:mod:`csms.runtime.bookings`) handles them and the timers, one at a time.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from csms.config import BookingSettings
from csms.domain.bookings import (
    OPEN,
    Booking,
    BookingRules,
    BookingStatus,
    Busy,
    Candidate,
    CapacityExcess,
    Placement,
    PlacementRequest,
    capacity_excess,
    check_rules,
    duration_for,
    free_windows,
    place,
)
from csms.domain.commands import CancelReservation, GetConfiguration, GetVariables, ReserveNow, VariableRef
from csms.domain.connectors import ConnectorKey, ConnectorSpec, ConnectorType
from csms.domain.ev_charging import ChargingNeeds
from csms.domain.grid import CapacityHold, Priority, grid_phases
from csms.domain.metering import MeterSample
from csms.domain.pricing import PriceQuote, PriceQuoter, QuoteRequest
from csms.domain.stations import ConnectorState, ConnectorStatus, StationId
from csms.domain.transactions import Transaction
from csms.errors import Conflict, CsmsError, InvalidRequest, NotFound, RuleViolation, StationError
from csms.service.commands import CommandService
from csms.service.connectors import ConnectorSpecService
from csms.service.events import EventBus
from csms.service.grid import GridService
from csms.storage import bookings as stored
from csms.storage.sql import SqlStorage

__all__ = ["BookingRequest", "BookingService", "FreeSlot", "SessionSource"]

log = structlog.get_logger(__name__)

_OUT_OF_SERVICE = {ConnectorStatus.FAULTED.value, ConnectorStatus.UNAVAILABLE.value}
# Statuses that say a car (or someone else's reservation) is at the connector right now.
_TAKEN_NOW = {
    ConnectorStatus.OCCUPIED.value,
    ConnectorStatus.PREPARING.value,
    ConnectorStatus.CHARGING.value,
    ConnectorStatus.SUSPENDED_EV.value,
    ConnectorStatus.SUSPENDED_EVSE.value,
    ConnectorStatus.FINISHING.value,
    ConnectorStatus.RESERVED.value,
}
_OFFLINE = "station offline"
# A slot "starting now" from a client whose clock is a little behind ours is still accepted.
_CLOCK_SKEW = timedelta(minutes=1)
# ReserveNow answers that send the booking elsewhere.
_REFUSALS = {"Occupied", "Faulted", "Unavailable", "Rejected"}


@dataclass(frozen=True, slots=True)
class BookingRequest:
    """What a driver (or an operator for a driver) asks for. Exactly one of ``duration`` and ``energy_wh``."""

    account_id: str
    id_token: str
    site_id: str
    starts_at: datetime
    duration: timedelta | None = None
    energy_wh: float | None = None
    connector_type: ConnectorType | None = None
    wanted: tuple[str, int, int] | None = None  # one connector instead of anywhere at the site
    priority: Priority | None = None  # None: the account's default


@dataclass(frozen=True, slots=True)
class FreeSlot:
    """A window on one connector in which the wanted energy (or duration) fits."""

    spec: ConnectorSpec
    start: datetime
    end: datetime
    needed: timedelta

    @property
    def latest_start(self) -> datetime:
        return self.end - self.needed


class SessionSource:
    """Where sessions in progress and their expected end come from (smart charging knows departures)."""

    def __init__(
        self,
        active: Callable[[], list[Transaction]],
        departure: Callable[[str, int], datetime | None],
        set_needs: Callable[[str, int, ChargingNeeds, Priority, str], None],
    ) -> None:
        self.active = active
        self.departure = departure
        self.set_needs = set_needs


@dataclass(frozen=True, slots=True)
class _Note:
    """A charger event to apply, queued by the observer methods."""

    kind: str
    at: datetime
    transaction: Transaction | None = None
    state: ConnectorState | None = None
    station_id: str | None = None
    reservation_id: int | None = None
    status: str | None = None
    seq: int = 0  # order of arrival


class BookingService:
    def __init__(
        self,
        settings: BookingSettings,
        storage: SqlStorage,
        grid: GridService,
        specs: ConnectorSpecService,
        commands: CommandService,
        events: EventBus,
        sessions: SessionSource,
        default_stay: timedelta,
        quoter: PriceQuoter | None = None,
    ) -> None:
        self._settings = settings
        self._storage = storage
        self._grid = grid
        self._specs = specs
        self._commands = commands
        self._events = events
        self._sessions = sessions
        self._default_stay = default_stay
        self.quoter = quoter
        self._live: dict[int, Booking] = {}
        self._rules: dict[str, BookingRules] = {}
        self._lock = asyncio.Lock()
        self._booking_ids = itertools.count(1)
        self._reservation_ids = itertools.count(1)
        self._in_flight: set[int] = set()  # bookings with a ReserveNow on its way
        self._retry_at: dict[int, datetime] = {}  # bookings whose station could not be reached, tried again then
        self._tried: dict[int, set[ConnectorKey]] = {}  # connectors that refused a booking
        self._notes: list[_Note] = []
        self._note_seq = 0
        # The last note queued when each booking's reservation was accepted: an "Available" queued before that
        # is older than the reservation and says nothing about it.
        self._reserved_after: dict[int, int] = {}
        self._wake: Callable[[], None] = lambda: None
        self._on_change: Callable[[], None] = lambda: None

    @property
    def lead_time(self) -> timedelta:
        return timedelta(minutes=self._settings.lead_time_minutes)

    @property
    def grace(self) -> timedelta:
        return timedelta(minutes=self._settings.no_show_grace_minutes)

    def bind(self, wake: Callable[[], None], on_change: Callable[[], None]) -> None:
        """``wake``: the timer loop should look again; ``on_change``: capacity holds changed (re-plan)."""
        self._wake = wake
        self._on_change = on_change

    async def load(self) -> None:
        """Read live bookings, rules and id counters; call once before serving."""
        self._live = {b.id: b for b in await self._storage.read(stored.read_live_bookings)}
        self._rules = await self._storage.read(stored.read_rules)
        booking_id, reservation_id = await self._storage.read(stored.read_id_counters)
        self._booking_ids = itertools.count(booking_id + 1)
        self._reservation_ids = itertools.count(reservation_id + 1)

    # -- reads --------------------------------------------------------------------------------------------

    def rules(self, site_id: str) -> BookingRules:
        return self._rules.get(site_id, BookingRules())

    def live(self) -> list[Booking]:
        return sorted(self._live.values(), key=lambda b: (b.starts_at, b.id))

    async def get(self, booking_id: int) -> Booking:
        booking = self._live.get(booking_id) or await self._storage.read(
            lambda conn: stored.read_booking(conn, booking_id)
        )
        if booking is None:
            raise NotFound("booking", booking_id)
        return booking

    async def find(self, where: stored.BookingFilter, limit: int, offset: int) -> list[Booking]:
        return await self._storage.read(lambda conn: stored.read_bookings(conn, where, limit, offset))

    async def strikes(self, account_id: str, site_id: str, now: datetime) -> list[datetime]:
        since = now - self.rules(site_id).strike_window
        return await self._storage.read(lambda conn: stored.read_strikes(conn, account_id, site_id, since))

    def holds(self, now: datetime) -> tuple[CapacityHold, ...]:
        """Capacity kept free for every booking not yet started, on its station's node (for smart charging)."""
        holds = (
            self._hold(booking.id, booking.station_id, booking.power_w, booking.starts_at, booking.ends_at)
            for booking in self._live.values()
            if booking.status in OPEN and booking.station_id is not None and booking.ends_at > now
        )
        return tuple(hold for hold in holds if hold is not None)

    def _hold(
        self, booking_id: int, station_id: str, power_w: float | None, starts_at: datetime, ends_at: datetime
    ) -> CapacityHold | None:
        """What a booking on the station holds: the connector's power over the station's phases, at most the
        wiring's maximum (None when the station is not wired)."""
        setup = self._grid.setup
        wiring = setup.wirings.get(station_id)
        if wiring is None:
            return None
        node = setup.nodes.get(wiring.node_id)
        voltage = node.voltage_v if node is not None else 230.0
        amps = wiring.max_current_a
        if power_w:
            amps = min(amps, power_w / (wiring.phases * voltage))
        phases = grid_phases(wiring.phases, wiring.rotation)
        return CapacityHold(f"booking-{booking_id}", wiring.node_id, starts_at, ends_at, amps, phases)

    def _capacity_excess(
        self, option: Placement, moves: Sequence[Booking], now: datetime, moving: int | None = None
    ) -> CapacityExcess | None:
        """Whether the bookings' held capacity with this one placed (and the displaced ones moved) would exceed a
        grid limit of its site over the slot. ``moving``: the booking being placed already holds capacity."""
        new = self._hold(0, option.key[0], option.power_w, option.starts_at, option.ends_at)  # ids start at 1
        if new is None:
            return None
        moved = {f"booking-{booking.id}" for booking in moves}
        if moving is not None:
            moved.add(f"booking-{moving}")
        holds = [hold for hold in self.holds(now) if hold.id not in moved]
        for booking in moves:
            assert booking.station_id is not None
            hold = self._hold(booking.id, booking.station_id, booking.power_w, booking.starts_at, booking.ends_at)
            if hold is not None:
                holds.append(hold)
        nodes = {node.id: node for node in self._grid.config(now).nodes}
        return capacity_excess(new, holds, nodes)

    # -- rules --------------------------------------------------------------------------------------------

    async def set_rules(self, site_id: str, rules: BookingRules, now: datetime) -> BookingRules:
        async with self._lock:
            await self._storage.write(stored.put_rules(site_id, rules, now))
            self._rules[site_id] = rules
        log.info("booking rules set", site_id=site_id)
        return rules

    # -- booking and cancelling ---------------------------------------------------------------------------

    async def book(self, request: BookingRequest, now: datetime) -> Booking:
        """Place a new booking on a fitting connector and store it (ReserveNow follows at lead time).

        Raises:
            RuleViolation: a rule of the site refuses it. Conflict: no connector is free for the slot.
            InvalidRequest: the slot is in the past, or the wanted connector is not at the site.
        """
        if request.starts_at < now - _CLOCK_SKEW:
            raise InvalidRequest(f"the slot must not start in the past (now is {now.isoformat()})")
        if request.wanted is not None and self._grid.site_of_station(request.wanted[0]) != request.site_id:
            raise InvalidRequest(f"station {request.wanted[0]} is not at site {request.site_id}")
        priority = request.priority
        if priority is None:
            priority = await self._storage.read(lambda conn: stored.read_account_priority(conn, request.account_id))
        placement_request = PlacementRequest(
            starts_at=request.starts_at,
            duration=request.duration,
            energy_wh=request.energy_wh,
            connector_type=request.connector_type,
            wanted=request.wanted,
            priority=priority,
        )
        async with self._lock:
            candidates = await self._candidates(request.site_id, now)
            options = place(placement_request, candidates)
            if not options:
                raise Conflict(_nothing_fits(request, candidates))
            # Rules are checked against the slot the first choice gives (energy bookings: its length).
            await self._check_rules(request, options[0], now)
            moves: list[Booking] = []
            chosen: Placement | None = None
            over: CapacityExcess | None = None
            for option in options:
                found = self._moves_for(option, candidates, now)
                if found is None:
                    continue
                # Placed elsewhere (another feeder) when its capacity would take a grid node over its limit here.
                excess = self._capacity_excess(option, found, now)
                if excess is not None:
                    over = over or excess
                    continue
                chosen, moves = option, found
                break
            if chosen is None and over is not None:
                raise RuleViolation("grid_capacity", over.limit, _over_limit(over))
            if chosen is None:
                raise Conflict(_nothing_fits(request, candidates))
            quote = await self._quote(request, chosen, now)
            booking = Booking(
                id=next(self._booking_ids),
                account_id=request.account_id,
                id_token=request.id_token,
                site_id=request.site_id,
                starts_at=chosen.starts_at,
                ends_at=chosen.ends_at,
                expires_at=chosen.starts_at + self.grace,
                status=BookingStatus.SCHEDULED,
                created_at=now,
                updated_at=now,
                priority=priority,
                energy_wh=request.energy_wh,
                connector_type=request.connector_type,
                wanted=request.wanted,
                station_id=chosen.key[0],
                evse_id=chosen.key[1],
                connector_id=chosen.key[2],
                power_w=chosen.power_w,
                quote=quote,
            )
            await self._storage.write([stored.insert_booking(booking), *map(stored.update_booking, moves)])
            self._live[booking.id] = booking
            for moved in moves:
                self._live[moved.id] = moved
        for moved in moves:
            self._publish("booking.reassigned", moved, now)
        self._publish("booking.created", booking, now)
        log.info("booking created", booking_id=booking.id, station_id=booking.station_id, evse_id=booking.evse_id)
        self._changed()
        return booking

    async def cancel(self, booking_id: int, reason: str, now: datetime) -> Booking:
        """Cancel a booking that has not started; a reservation on the charger is cancelled too.

        Raises:
            NotFound: no such booking. Conflict: it is active or already over.
        """
        async with self._lock:
            booking = await self.get(booking_id)
            if booking.status not in OPEN:
                raise Conflict(f"booking {booking_id} is {booking.status.value} and cannot be cancelled")
            booking = await self._finish(booking, BookingStatus.CANCELLED, reason, now)
        await self._cancel_reservation(booking, now)
        self._publish("booking.cancelled", booking, now)
        return booking

    async def free_slots(
        self,
        site_id: str,
        start: datetime,
        end: datetime,
        now: datetime,
        energy_wh: float | None = None,
        duration: timedelta | None = None,
        connector_type: ConnectorType | None = None,
    ) -> list[FreeSlot]:
        """Windows in [start, end) on each fitting connector of the site where the energy or duration fits."""
        slots: list[FreeSlot] = []
        for candidate in await self._candidates(site_id, now):
            spec = candidate.spec
            if not spec.bookable or not candidate.available:
                continue
            if connector_type is not None and spec.connector_type is not connector_type:
                continue
            if duration is not None:
                needed = duration
            elif energy_wh is not None and spec.max_power_w:
                needed = duration_for(energy_wh, spec.max_power_w)
            else:
                continue
            for window_start, window_end in free_windows(candidate.busy, start, end, needed):
                slots.append(FreeSlot(spec, window_start, window_end, needed))
        slots.sort(key=lambda s: (s.start, s.needed, s.spec.key))
        return slots

    # -- timers -------------------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """The earliest instant something has to be done (a ReserveNow, a no-show, a retry)."""
        times: list[datetime] = []
        for booking in self._live.values():
            if booking.status is BookingStatus.SCHEDULED:
                times.append(
                    max(booking.starts_at - self.lead_time, self._retry_at.get(booking.id, booking.created_at))
                )
            if booking.status in OPEN:
                times.append(booking.expires_at)
        return min(times, default=None)

    def has_notes(self) -> bool:
        return bool(self._notes)

    async def run_due(self, now: datetime) -> None:
        """Apply queued charger events, then expire no-shows and send the ReserveNows that are due."""
        await self._apply_notes()
        for booking in list(self._live.values()):
            current = self._live.get(booking.id)
            if current is None or current.status not in OPEN or current.id in self._in_flight:
                continue
            if now >= current.expires_at:
                await self._no_show(current, now)
            elif current.status is BookingStatus.SCHEDULED and now >= current.starts_at - self.lead_time:
                if self._retry_at.get(current.id, now) <= now:
                    await self._reserve(current, now)

    # -- charger events (ChargingObserver + reservation updates) -------------------------------------------

    # Only events at stations with a live booking are queued: the rest of the fleet costs one scan each.

    def transaction_started(self, transaction: Transaction, now: datetime) -> None:
        if self._has_booking_at(transaction.station_id):
            self._note(_Note("started", now, transaction=transaction))

    def transaction_ended(self, transaction: Transaction, now: datetime) -> None:
        if any(b.transaction_id == transaction.id for b in self._live.values()):
            self._note(_Note("ended", now, transaction=transaction))

    def connector_changed(self, state: ConnectorState, now: datetime) -> None:
        if self._has_booking_at(state.station_id):
            self._note(_Note("status", now, state=state))

    def transaction_authorized(self, transaction: Transaction, id_token: str, now: datetime) -> None:
        # 2.0.1: the driver authorised after the Started event (plugged in first), which carried no token and no
        # reservation id: the session is matched by its token now, as if it had started with it.
        if self._has_booking_at(transaction.station_id):
            self._note(_Note("started", now, transaction=replace(transaction, id_token=id_token)))

    def _has_booking_at(self, station_id: str) -> bool:
        return any(b.station_id == station_id for b in self._live.values())

    def reservation_changed(self, station_id: str, reservation_id: int, status: str, now: datetime) -> None:
        self._note(_Note("reservation", now, station_id=station_id, reservation_id=reservation_id, status=status))

    def metered(self, station_id: str, evse_id: int, samples: tuple[MeterSample, ...], now: datetime) -> None:
        pass

    def station_booted(self, station_id: str, now: datetime) -> None:
        # A station back online: its bookings waiting for a retry are tried again now.
        waiting = [b.id for b in self._live.values() if b.station_id == station_id and b.id in self._retry_at]
        for booking_id in waiting:
            self._retry_at.pop(booking_id, None)
        if waiting:
            self._wake()

    def charging_needs(self, station_id: str, evse_id: int, needs: ChargingNeeds, now: datetime) -> bool:
        return False

    def charging_state(self, transaction: Transaction, state: str, now: datetime) -> None:
        pass  # a booking follows the session, not how the car charges

    def _note(self, note: _Note) -> None:
        self._note_seq += 1
        self._notes.append(replace(note, seq=self._note_seq))
        self._wake()

    async def _apply_notes(self) -> None:
        notes, self._notes = self._notes, []
        for note in notes:
            if note.kind == "started" and note.transaction is not None:
                await self._session_started(note.transaction, note.at)
            elif note.kind == "ended" and note.transaction is not None:
                await self._session_ended(note.transaction, note.at)
            elif note.kind == "status" and note.state is not None:
                await self._status(note.state, note.seq, note.at)
            elif note.kind == "reservation" and note.reservation_id is not None and note.status is not None:
                await self._reservation_update(note.reservation_id, note.status, note.at)

    async def _session_started(self, transaction: Transaction, now: datetime) -> None:
        if any(b.transaction_id == transaction.id for b in self._live.values()):
            return  # already matched (a late token for a session that started from the booking)
        booking = self._booking_for(transaction, now)
        if booking is None:
            return
        async with self._lock:
            booking = self._live.get(booking.id)
            if booking is None or booking.status not in OPEN:
                return
            booking = replace(booking, status=BookingStatus.ACTIVE, transaction_id=transaction.id, updated_at=now)
            # The driver may have arrived at another connector of the station ("any" reservations).
            booking = replace(booking, evse_id=transaction.evse_id, connector_id=transaction.connector_id)
            await self._storage.write([stored.update_booking(booking)])
            self._live[booking.id] = booking
        needs = ChargingNeeds(energy_wh=booking.energy_wh, departure=booking.ends_at)
        self._sessions.set_needs(
            transaction.station_id, transaction.evse_id, needs, booking.priority, f"booking {booking.id}"
        )
        self._publish("booking.active", booking, now)
        log.info("booking active", booking_id=booking.id, transaction_id=transaction.id)
        self._changed()

    async def _session_ended(self, transaction: Transaction, now: datetime) -> None:
        booking = next(
            (b for b in self._live.values() if b.status is BookingStatus.ACTIVE and b.transaction_id == transaction.id),
            None,
        )
        if booking is None:
            return
        async with self._lock:
            booking = await self._finish(booking, BookingStatus.COMPLETED, None, now)
        self._publish("booking.completed", booking, now)

    async def _status(self, state: ConnectorState, seq: int, now: datetime) -> None:
        for booking in list(self._live.values()):
            if booking.status not in OPEN or booking.station_id != state.station_id:
                continue
            station_wide = state.evse_id == 0
            here = station_wide or booking.evse_id == state.evse_id
            if not here:
                continue
            status = state.status.value
            due = booking.status is BookingStatus.RESERVED or booking.starts_at - self.lead_time <= now
            # A fault days ahead of a slot may be repaired in time; the ReserveNow at lead time will tell.
            if status in _OUT_OF_SERVICE and due and (not booking.reserve_any or station_wide):
                await self._rebook(booking, f"connector {status.lower()}", now, cancel_first=True)
            elif status == ConnectorStatus.AVAILABLE.value and booking.status is BookingStatus.RESERVED:
                fresh = seq > self._reserved_after.get(booking.id, 0)
                if fresh and not booking.reserve_any and now < booking.expires_at:
                    # The charger no longer holds it (restarted, cleared): reserve again.
                    await self._set(booking, BookingStatus.SCHEDULED, "the charger dropped the reservation", now)
                    self._wake()

    async def _reservation_update(self, reservation_id: int, status: str, now: datetime) -> None:
        booking = next((b for b in self._live.values() if b.reservation_id == reservation_id), None)
        if booking is None or booking.status not in OPEN:
            return
        if status == "Expired":
            await self._no_show(booking, now, charger_expired=True)
        elif status == "Removed":
            await self._rebook(booking, "the charger removed the reservation", now, cancel_first=False)

    def _booking_for(self, transaction: Transaction, now: datetime) -> Booking | None:
        """The open booking a new session belongs to: by reservation id, else the booked token at its station."""
        candidates = [b for b in self._live.values() if b.status in OPEN]
        if transaction.reservation_id is not None:
            found = next(
                (b for b in candidates if b.reservation_id == transaction.reservation_id),
                None,
            )
            if found is not None:
                return found
        for booking in candidates:
            if booking.id_token != transaction.id_token or booking.station_id != transaction.station_id:
                continue
            if not booking.reserve_any and booking.evse_id != transaction.evse_id:
                continue
            if booking.starts_at - self.lead_time <= now < booking.expires_at:
                return booking
        return None

    # -- reservations on chargers -------------------------------------------------------------------------

    async def _reserve(self, booking: Booking, now: datetime, allow_any: bool = True) -> None:
        """Send ReserveNow for the booking's connector; on a refusal move it elsewhere or fail it."""
        assert booking.station_id is not None and booking.evse_id is not None
        station_id = booking.station_id
        version = self._commands.version(station_id)
        if version is None:
            await self._unreachable(booking, _OFFLINE, now)
            return
        any_connector = allow_any and booking.wanted is None and await self._any_connector_ok(booking, version, now)
        reservation_id = next(self._reservation_ids)
        async with self._lock:
            current = self._live.get(booking.id)
            if current is None or current.status is not BookingStatus.SCHEDULED:
                return
            booking = replace(current, reservation_id=reservation_id, reserve_any=any_connector, updated_at=now)
            # Stored before the call: after a crash we still know which reservation to cancel.
            await self._storage.write([stored.update_booking(booking)])
            self._live[booking.id] = booking
            self._in_flight.add(booking.id)
        evse_id = booking.evse_id
        assert evse_id is not None
        spec = self._specs.spec(station_id, evse_id, booking.connector_id or 1)
        plug = booking.connector_type or (
            spec.connector_type if spec.connector_type is not ConnectorType.UNKNOWN else None
        )
        command = ReserveNow(
            reservation_id=reservation_id,
            id_token=booking.id_token,
            expiry=booking.expires_at,
            evse_id=None if any_connector else evse_id,
            connector_type=plug.ocpp201 if plug is not None and version != "1.6" else None,
        )
        try:
            result = await self._commands.execute(StationId(station_id), command, now)
        except StationError as exc:
            self._in_flight.discard(booking.id)
            await self._unreachable(booking, str(exc), now)
            return
        self._in_flight.discard(booking.id)
        status = result.status or "Rejected"
        async with self._lock:
            current = self._live.get(booking.id)
            if current is None or current.reservation_id != reservation_id:
                stale = True
            else:
                stale = current.status is not BookingStatus.SCHEDULED
                booking = current
        if stale:
            # Cancelled (or moved) while the charger was answering: take an accepted reservation back.
            if status == "Accepted":
                await self._send_cancel(station_id, reservation_id, now)
            return
        if status == "Accepted":
            self._reserved_after[booking.id] = self._note_seq
            await self._set(booking, BookingStatus.RESERVED, None, now)
            self._publish("booking.reserved", self._live[booking.id], now)
            log.info("booking reserved", booking_id=booking.id, station_id=station_id, reservation_id=reservation_id)
        elif any_connector and status in _REFUSALS:
            # The station refused to pick a connector itself: ask for the planned one instead.
            await self._reserve(booking, now, allow_any=False)
        else:
            await self._rebook(booking, f"ReserveNow answered {status}", now, cancel_first=False)

    async def _any_connector_ok(self, booking: Booking, version: str, now: datetime) -> bool:
        """Whether to reserve "any connector/EVSE" of the station: a site booking, every connector of the station
        fits it, and the station says it supports such reservations."""
        if not self._settings.any_connector or booking.station_id is None:
            return False
        specs = await self._specs.station_specs(booking.station_id)
        if not specs or any(not s.bookable for s in specs):
            return False
        if booking.connector_type is not None and any(s.connector_type is not booking.connector_type for s in specs):
            return False
        return await self._supports_any(booking.station_id, version, now)

    async def _supports_any(self, station_id: str, version: str, now: datetime) -> bool:
        known = {
            (row["component"], row["variable"]): row["value"] for row in await self._storage.list_variables(station_id)
        }
        key = ("OCPP16Configuration", "ReserveConnectorZeroSupported") if version == "1.6" else None
        if key is None:
            key = ("ReservationCtrlr", "NonEvseSpecific")
        if key in known:
            return str(known[key]).lower() == "true"
        try:
            if version == "1.6":
                result = await self._commands.execute(StationId(station_id), GetConfiguration((key[1],)), now)
                items = result.response.get("configurationKey") or []
                return any(i.get("key") == key[1] and str(i.get("value")).lower() == "true" for i in items)
            result = await self._commands.execute(
                StationId(station_id), GetVariables((VariableRef(key[0], key[1]),)), now
            )
            answers = result.response.get("getVariableResult") or []
            return any(
                a.get("attributeStatus") == "Accepted" and str(a.get("attributeValue")).lower() == "true"
                for a in answers
            )
        except StationError:
            return False

    async def _unreachable(self, booking: Booking, why: str, now: datetime) -> None:
        """The station could not be asked: another fitting connector if there is one, else try again later."""
        moved = await self._move(booking, why, now, exclude_station=True)
        if not moved:
            if booking.station_id is not None and self._commands.is_connected(booking.station_id):
                # It connected while we looked for another connector (its boot found nothing to retry yet).
                if why == _OFFLINE:
                    self._wake()
                    return
            self._retry_at[booking.id] = now + timedelta(seconds=self._settings.retry_seconds)
            log.warning("booking could not be reserved yet", booking_id=booking.id, reason=why)

    async def _rebook(self, booking: Booking, why: str, now: datetime, cancel_first: bool) -> None:
        """The connector cannot serve the booking: cancel what the charger holds, move it, or fail it."""
        if cancel_first:
            await self._cancel_reservation(booking, now)
        if not await self._move(booking, why, now, exclude_station=False):
            async with self._lock:
                current = self._live.get(booking.id)
                if current is None or current.status not in OPEN:
                    return
                failed = await self._finish(current, BookingStatus.FAILED, why, now)
            self._publish("booking.failed", failed, now)
            log.warning("booking failed", booking_id=booking.id, reason=why)

    async def _move(self, booking: Booking, why: str, now: datetime, exclude_station: bool) -> bool:
        """Place the booking on another fitting connector of its site (same slot); True when it moved."""
        async with self._lock:
            current = self._live.get(booking.id)
            if current is None or current.status not in OPEN or current.key is None:
                return True  # nothing left to move
            tried = self._tried.setdefault(current.id, set())
            tried.add(current.key)
            candidates = await self._candidates(current.site_id, now)
            if exclude_station:
                tried |= {c.spec.key for c in candidates if c.spec.station_id == current.station_id}
            request = _request_of(current, frozenset(tried))
            options = [
                p
                for p in place(request, candidates)
                if not p.displaced and self._capacity_excess(p, (), now, moving=current.id) is None
            ]
            if not options:
                return False
            target = options[0]
            moved = replace(
                current,
                station_id=target.key[0],
                evse_id=target.key[1],
                connector_id=target.key[2],
                power_w=target.power_w,
                ends_at=target.ends_at,
                status=BookingStatus.SCHEDULED,
                reservation_id=None,
                reserve_any=False,
                reason=why,
                updated_at=now,
            )
            await self._storage.write([stored.update_booking(moved)])
            self._live[moved.id] = moved
            self._retry_at.pop(moved.id, None)
        self._publish("booking.reassigned", moved, now)
        log.info("booking reassigned", booking_id=moved.id, station_id=moved.station_id, reason=why)
        self._changed()
        self._wake()
        return True

    async def _no_show(self, booking: Booking, now: datetime, charger_expired: bool = False) -> None:
        """At expiry without a session: expired with a strike when it was reserved, failed when never reserved."""
        async with self._lock:
            current = self._live.get(booking.id)
            if current is None or current.status not in OPEN:
                return
            if current.status is BookingStatus.RESERVED or charger_expired:
                expired = await self._finish(current, BookingStatus.EXPIRED, "no-show", now, strike=True)
                kind = "booking.expired"
            else:
                expired = await self._finish(current, BookingStatus.FAILED, "could not be reserved in time", now)
                kind = "booking.failed"
        if not charger_expired:
            # 1.6 chargers send nothing when a reservation lapses; make sure the connector is free again.
            await self._cancel_reservation(expired, now)
        self._publish(kind, expired, now)
        log.info("booking " + kind.split(".")[1], booking_id=expired.id, account_id=expired.account_id)

    async def _cancel_reservation(self, booking: Booking, now: datetime) -> None:
        if booking.reservation_id is not None and booking.station_id is not None:
            await self._send_cancel(booking.station_id, booking.reservation_id, now)

    async def _send_cancel(self, station_id: str, reservation_id: int, now: datetime) -> None:
        if not self._commands.is_connected(station_id):
            return
        try:
            await self._commands.execute(StationId(station_id), CancelReservation(reservation_id), now)
        except StationError as exc:
            log.warning(
                "CancelReservation failed", station_id=station_id, reservation_id=reservation_id, error=str(exc)
            )

    # -- helpers ------------------------------------------------------------------------------------------

    async def _set(self, booking: Booking, status: BookingStatus, reason: str | None, now: datetime) -> Booking:
        async with self._lock:
            current = self._live.get(booking.id, booking)
            updated = replace(current, status=status, reason=reason or current.reason, updated_at=now)
            await self._storage.write([stored.update_booking(updated)])
            self._live[updated.id] = updated
        self._changed()
        return updated

    async def _finish(
        self, booking: Booking, status: BookingStatus, reason: str | None, now: datetime, strike: bool = False
    ) -> Booking:
        """End a booking (caller holds the lock): stored, out of memory, its hold released."""
        finished = replace(booking, status=status, reason=reason or booking.reason, updated_at=now)
        writes = [stored.update_booking(finished)]
        if strike:
            writes.append(stored.insert_strike(finished, now))
        await self._storage.write(writes)
        self._live.pop(finished.id, None)
        self._retry_at.pop(finished.id, None)
        self._tried.pop(finished.id, None)
        self._reserved_after.pop(finished.id, None)
        self._changed()
        return finished

    async def _check_rules(self, request: BookingRequest, first: Placement, now: datetime) -> None:
        rules = self.rules(request.site_id)
        since = min(first.starts_at, now) - timedelta(days=8)
        mine = await self._storage.read(lambda conn: stored.read_bookings_of(conn, request.account_id, since))
        strikes = await self.strikes(request.account_id, request.site_id, now)
        violation = check_rules(rules, first.starts_at, first.ends_at, mine, strikes, request.site_id, now)
        if violation is not None:
            raise RuleViolation(violation.rule, violation.limit, violation.message)

    async def _quote(self, request: BookingRequest, placement: Placement, now: datetime) -> dict[str, str] | None:
        if self.quoter is None:
            return None
        quote_request = QuoteRequest(
            site_id=request.site_id,
            starts_at=placement.starts_at,
            ends_at=placement.ends_at,
            energy_wh=request.energy_wh,
            station_id=placement.key[0],
            account_id=request.account_id,
        )
        try:
            return _quote_body(await self.quoter.quote(quote_request, now))
        except CsmsError as exc:
            log.warning("no price quote for booking", site_id=request.site_id, error=str(exc))
            return None

    async def _candidates(self, site_id: str, now: datetime) -> list[Candidate]:
        """Every connector of the site's stations with its state now and what takes its time."""
        stations = self._grid.stations_of_site(site_id)
        if not stations:
            return []
        specs = await self._specs.specs(set(stations))
        statuses = await self._storage.read(lambda conn: stored.read_connector_statuses(conn, stations))
        busy: dict[tuple[str, int], list[Busy]] = {}
        for booking in self._live.values():
            if booking.station_id is None or booking.evse_id is None:
                continue
            end = booking.ends_at
            movable = booking.status is BookingStatus.SCHEDULED and booking.reservation_id is None
            if booking.status is BookingStatus.ACTIVE:
                end = max(end, now + self.grace)
                movable = False
            entry = Busy(booking.starts_at, end, booking.id, booking.priority, movable)
            busy.setdefault((booking.station_id, booking.evse_id), []).append(entry)
        booked_tx = {b.transaction_id for b in self._live.values() if b.transaction_id is not None}
        for transaction in self._sessions.active():
            if transaction.id in booked_tx:
                continue
            departure = self._sessions.departure(transaction.station_id, transaction.evse_id)
            end = departure or transaction.started_at + self._default_stay
            end = max(end, now + self.grace)  # overstaying: assume it frees up soon, not that it already has
            busy.setdefault((transaction.station_id, transaction.evse_id), []).append(Busy(transaction.started_at, end))
        soon = now + self.lead_time
        candidates = []
        for spec in specs:
            evse = (spec.station_id, spec.evse_id)
            status = statuses.get(spec.key)
            station_status = statuses.get((spec.station_id, 0, 0))
            in_service = status not in _OUT_OF_SERVICE and station_status not in _OUT_OF_SERVICE
            entries = list(busy.get(evse, ()))
            ours = any(b.booking_id is not None and b.start <= soon for b in entries)
            if status in _TAKEN_NOW and not ours and not any(b.booking_id is None for b in entries):
                # Someone is at the connector now that we know nothing about: busy until they leave.
                entries.append(Busy(now - timedelta(seconds=1), now + self.grace))
            candidates.append(Candidate(spec, in_service, tuple(entries)))
        return candidates

    def _moves_for(self, option: Placement, candidates: Sequence[Candidate], now: datetime) -> list[Booking] | None:
        """The displaced bookings re-placed elsewhere, or None when one of them fits nowhere else."""
        moves: list[Booking] = []
        taken = [c for c in candidates if (c.spec.station_id, c.spec.evse_id) == option.key[:2]]
        excluded = frozenset(c.spec.key for c in taken)
        reserved_now = list(candidates)
        for booking_id in option.displaced:
            booking = self._live[booking_id]
            request = _request_of(booking, excluded)
            # Later moves must not land on a connector an earlier move just took.
            targets = [p for p in place(request, reserved_now) if not p.displaced]
            if not targets:
                return None
            target = targets[0]
            moved = replace(
                booking,
                station_id=target.key[0],
                evse_id=target.key[1],
                connector_id=target.key[2],
                power_w=target.power_w,
                ends_at=target.ends_at,
                reason="moved for a higher-priority booking",
                updated_at=now,
            )
            moves.append(moved)
            reserved_now = [
                replace(c, busy=(*c.busy, Busy(moved.starts_at, moved.ends_at, moved.id, moved.priority)))
                if (c.spec.station_id, c.spec.evse_id) == target.key[:2]
                else c
                for c in reserved_now
            ]
        return moves

    def _publish(self, kind: str, booking: Booking, now: datetime) -> None:
        self._events.publish(
            kind, now, booking_body(booking), site_ids=frozenset({booking.site_id}), account_id=booking.account_id
        )

    def _changed(self) -> None:
        self._on_change()


def _request_of(booking: Booking, exclude: frozenset[ConnectorKey]) -> PlacementRequest:
    return PlacementRequest(
        starts_at=booking.starts_at,
        duration=None if booking.energy_wh is not None else booking.ends_at - booking.starts_at,
        energy_wh=booking.energy_wh,
        connector_type=booking.connector_type,
        wanted=booking.wanted,
        priority=booking.priority,
        exclude=exclude,
        ignore_booking=booking.id,
    )


def _over_limit(excess: CapacityExcess) -> str:
    what = "per phase" if excess.unit == "A" else "in total"
    return (
        f"grid capacity: with this booking, bookings would hold {excess.held:.1f} {excess.unit} {what} on "
        f"{excess.node_id} at {excess.at.isoformat()}, above its limit of {excess.limit:g} {excess.unit}"
    )


def _nothing_fits(request: BookingRequest, candidates: Sequence[Candidate]) -> str:
    if not candidates:
        return f"site {request.site_id} has no stations with connectors"
    when = f"from {request.starts_at.isoformat()} for that long"
    if request.wanted is not None:
        station, evse, connector = request.wanted
        return f"station {station} EVSE {evse} connector {connector} is not bookable or not free {when}"
    plug = f"{request.connector_type.value} " if request.connector_type else ""
    return f"no bookable {plug}connector is free at site {request.site_id} {when}"


def _quote_body(quote: PriceQuote) -> dict[str, str]:
    return {
        "currency": quote.currency,
        "tariff_id": quote.tariff_id,
        "tier": quote.tier,
        "energy_per_kwh": str(quote.energy_per_kwh),
        "time_per_hour": str(quote.time_per_hour),
        "session_fee": str(quote.session_fee),
        "estimated_total": str(quote.estimated_total),
        "quoted_at": quote.quoted_at.isoformat(),
        "valid_until": quote.valid_until.isoformat(),
    }


def booking_body(booking: Booking) -> dict[str, Any]:
    """A booking as the API and events show it."""
    return {
        "id": booking.id,
        "account_id": booking.account_id,
        "id_token": booking.id_token,
        "site_id": booking.site_id,
        "status": booking.status.value,
        "starts_at": booking.starts_at,
        "ends_at": booking.ends_at,
        "expires_at": booking.expires_at,
        "energy_wh": booking.energy_wh,
        "connector_type": booking.connector_type.value if booking.connector_type else None,
        "priority": booking.priority.name.lower(),
        "requested": None
        if booking.wanted is None
        else {"station_id": booking.wanted[0], "evse_id": booking.wanted[1], "connector_id": booking.wanted[2]},
        "station_id": booking.station_id,
        "evse_id": booking.evse_id,
        "connector_id": booking.connector_id,
        "power_w": booking.power_w,
        "reservation_id": booking.reservation_id,
        "reserve_any": booking.reserve_any,
        "transaction_id": booking.transaction_id,
        "quote": booking.quote,
        "reason": booking.reason,
        "created_at": booking.created_at,
        "updated_at": booking.updated_at,
    }
