"""Version-neutral station state machine and physics (no networking).

The core owns connectors, sessions, reservations, profiles and the meter. Every externally visible
change is reported as a `CoreEvent` through `emit`; the protocol adapter turns events into OCPP
messages. All methods are synchronous and run on the event loop thread, so no locking is needed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from simulator.ev import EVState, charge, draw_current
from simulator.model import (
    Behaviour,
    ConnectorSnapshot,
    ConnectorState,
    MeterSample,
    Reservation,
    Settings,
    StopReason,
    TxTrigger,
)
from simulator.profiles import Limit, ProfileStore, TxContext, min_limit
from simulator.state import (
    Connector,
    CoreEvent,
    PendingStart,
    ReservationEnded,
    Session,
    StatusChanged,
    TxEnded,
    TxStarted,
    TxUpdated,
)

__all__ = ["StationCore"]


@dataclass
class _Counters:
    started: int = 0
    completed: int = 0
    completed_wh: float = 0.0
    begin_samples: dict[str, MeterSample] = field(default_factory=dict)


class StationCore:
    def __init__(
        self,
        connectors: int,
        *,
        rng: random.Random,
        settings: Callable[[], Settings],
        new_tx_key: Callable[[], str],
        emit: Callable[[CoreEvent], None],
        now: datetime,
        max_current_a: float = 32.0,
        voltage: float = 230.0,
        behaviour: Behaviour | None = None,
    ) -> None:
        self.connectors = {i: Connector(i) for i in range(1, connectors + 1)}
        self.rng = rng
        self.settings = settings
        self.new_tx_key = new_tx_key
        self.emit = emit
        self.max_current_a = max_current_a
        self.voltage = voltage
        self.behaviour = behaviour or Behaviour()
        self.profiles = ProfileStore(voltage=voltage, phases=3)
        self.local_list: dict[str, str] = {}
        self.local_list_version = 0
        self.auth_cache: dict[str, str] = {}
        self.counters = _Counters()
        self._last_step = now
        self._station_reported: ConnectorState | None = None
        # Called with (when, phase currents) whenever what the station draws changes (see `phase_currents`).
        self.draw_listeners: list[Callable[[datetime, tuple[float, float, float]], None]] = []
        self._drawn: tuple[float, float, float] = (0.0, 0.0, 0.0)
        for c in self.connectors.values():
            c.offered_a = max_current_a

    # -- queries ---------------------------------------------------------------------------------

    def connector(self, connector_id: int) -> Connector:
        return self.connectors[connector_id]

    def sessions(self) -> list[Session]:
        return [c.session for c in self.connectors.values() if c.session is not None]

    def find_session(self, *, key: str | None = None, csms_id: int | None = None) -> Session | None:
        for s in self.sessions():
            if (key is not None and s.key == key) or (csms_id is not None and s.csms_id == csms_id):
                return s
        return None

    def startable(self, connector_id: int, id_tag: str) -> bool:
        """Could `id_tag` start a transaction here (ignoring whether an EV is plugged)?"""
        c = self.connectors.get(connector_id)
        if c is None or c.faulted or not c.operative or c.session is not None:
            return False
        res = c.reservation
        return res is None or id_tag in (res.id_tag, res.parent_id_tag)

    def free_connector(self, id_tag: str | None = None) -> int | None:
        """First connector where a new session could start, preferring ones with an EV waiting."""
        candidates = [c for c in self.connectors.values() if self.startable(c.connector_id, id_tag or "")]
        candidates.sort(key=lambda c: (c.ev is None, c.connector_id))
        return candidates[0].connector_id if candidates else None

    def local_auth(self, id_tag: str) -> str | None:
        """Locally known authorization status (local list first, then cache), or None."""
        settings = self.settings()
        if settings.local_list_enabled and id_tag in self.local_list:
            return self.local_list[id_tag]
        if settings.auth_cache_enabled and id_tag in self.auth_cache:
            return self.auth_cache[id_tag]
        return None

    def phase_currents(self) -> tuple[float, float, float]:
        """What the station draws now on its own L1, L2, L3 (A), summed over connectors: the ground truth a
        meter at the station's supply would show. A car on fewer phases loads the station's first ones."""
        totals = [0.0, 0.0, 0.0]
        for c in self.connectors.values():
            for phase in range(min(c.phases, 3)):
                totals[phase] += c.current_a
        return (totals[0], totals[1], totals[2])

    def sample(self, connector_id: int, now: datetime, context: str = "Sample.Periodic") -> MeterSample:
        c = self.connectors[connector_id]
        return MeterSample(
            timestamp=now,
            energy_wh=c.energy_wh,
            power_w=c.current_a * self.voltage * c.phases,
            current_a=c.current_a,
            phases=c.phases,
            voltage=self.voltage,
            offered_a=c.offered_a,
            soc_percent=c.ev.soc_percent if c.ev is not None else None,
            context=context,
        )

    def snapshot(self, connector_id: int) -> ConnectorSnapshot:
        c = self.connectors[connector_id]
        s = c.session
        return ConnectorSnapshot(
            connector_id=connector_id,
            state=c.state(),
            plugged=c.ev is not None,
            transaction_id=s.profile_tx_id if s is not None else None,
            id_tag=s.id_tag if s is not None else None,
            current_a=c.current_a,
            phases=c.phases,
            power_w=c.current_a * self.voltage * c.phases,
            offered_a=c.offered_a,
            energy_wh=c.energy_wh,
            session_energy_wh=c.energy_wh - s.meter_start_wh if s is not None else 0.0,
            soc_percent=c.ev.soc_percent if c.ev is not None else None,
            reservation_id=c.reservation.reservation_id if c.reservation is not None else None,
        )

    # -- EV and session actions ------------------------------------------------------------------

    def plug_in(self, connector_id: int, ev: EVState, now: datetime, departure: datetime | None = None) -> None:
        c = self.connectors[connector_id]
        if c.ev is not None:
            raise RuntimeError(f"connector {connector_id} already has an EV")
        c.ev, c.departure, c.finishing = ev, departure, False
        pending = c.pending
        if pending is not None and c.session is None:
            c.pending = None
            trigger = pending.trigger if pending.trigger is TxTrigger.REMOTE_START else TxTrigger.CABLE_PLUGGED_IN
            self.begin_transaction(connector_id, pending.id_tag, now, trigger, pending)
        self.sync_statuses()

    def unplug(self, connector_id: int, now: datetime) -> None:
        c = self.connectors[connector_id]
        if c.session is not None:
            self.end_transaction(connector_id, now, StopReason.EV_DISCONNECTED, TxTrigger.EV_DEPARTED)
        c.ev, c.departure, c.finishing = None, None, False
        self.recompute(now)
        self.sync_statuses()

    def authorize_start(self, connector_id: int, pending: PendingStart, now: datetime) -> Session | None:
        """Start at once if an EV is plugged, else wait for one until `pending.expires`."""
        c = self.connectors[connector_id]
        if c.ev is not None:
            return self.begin_transaction(connector_id, pending.id_tag, now, pending.trigger, pending)
        c.pending = pending
        self.sync_statuses()
        return None

    def begin_transaction(
        self,
        connector_id: int,
        id_tag: str,
        now: datetime,
        trigger: TxTrigger,
        pending: PendingStart | None = None,
    ) -> Session:
        c = self.connectors[connector_id]
        reservation_id = None
        if c.reservation is not None and id_tag in (c.reservation.id_tag, c.reservation.parent_id_tag):
            reservation_id = c.reservation.reservation_id
            c.reservation = None
        interval = self.settings().meter_interval_s
        session = Session(
            key=self.new_tx_key(),
            connector_id=connector_id,
            id_tag=id_tag,
            started_at=now,
            meter_start_wh=c.energy_wh,
            next_sample_at=now + timedelta(seconds=max(1, interval)),
            reservation_id=reservation_id,
            remote_start_id=pending.remote_start_id if pending is not None else None,
        )
        c.session, c.pending, c.finishing = session, None, False
        if pending is not None and pending.profile is not None:
            self.profiles.install(connector_id, pending.profile, now, pending.profile_raw)
        self.counters.started += 1
        self.recompute(now)
        begin = self.sample(connector_id, now, "Transaction.Begin")
        self.counters.begin_samples[session.key] = begin
        session.charging_state = c.charging_state()
        self.emit(TxStarted(session, begin, trigger, session.next_seq(), session.charging_state))
        self.sync_statuses()
        return session

    def end_transaction(
        self, connector_id: int, now: datetime, reason: StopReason, trigger: TxTrigger
    ) -> Session | None:
        c = self.connectors[connector_id]
        session = c.session
        if session is None:
            return None
        self.advance(now)
        c.current_a = 0.0
        end = self.sample(connector_id, now, "Transaction.End")
        begin = self.counters.begin_samples.pop(session.key, end)
        c.session = None
        c.finishing = c.ev is not None
        self.emit(TxEnded(session, end, reason, trigger, session.next_seq(), begin))
        self.counters.completed += 1
        self.counters.completed_wh += c.energy_wh - session.meter_start_wh
        self.profiles.remove_tx_profiles(connector_id)
        if c.inoperative_pending:
            c.operative, c.inoperative_pending = False, False
        self.recompute(now)
        self.sync_statuses()
        return session

    def set_fault(self, connector_id: int, faulted: bool, now: datetime) -> None:
        c = self.connectors[connector_id]
        if faulted and c.session is not None:
            self.end_transaction(connector_id, now, StopReason.OTHER, TxTrigger.ABNORMAL)
        c.faulted = faulted
        self.sync_statuses()

    # -- reservations and availability -----------------------------------------------------------

    def reserve(self, connector_id: int | None, reservation: Reservation) -> str:
        """ReserveNow; `connector_id` None = any connector. Returns a ReservationStatus name."""
        for c in self.connectors.values():
            if c.reservation is not None and c.reservation.reservation_id == reservation.reservation_id:
                if connector_id in (None, c.connector_id):
                    c.reservation = reservation
                    self.sync_statuses()
                    return "Accepted"
                c.reservation = None
        if connector_id is None:
            free = [c for c in self.connectors.values() if c.state() is ConnectorState.AVAILABLE]
            if not free:
                return "Occupied"
            connector_id = free[0].connector_id
        c_opt = self.connectors.get(connector_id)
        if c_opt is None:
            return "Rejected"
        if c_opt.faulted:
            return "Faulted"
        if not c_opt.operative:
            return "Unavailable"
        if c_opt.state() is not ConnectorState.AVAILABLE:
            return "Occupied"
        c_opt.reservation = reservation
        self.sync_statuses()
        return "Accepted"

    def cancel_reservation(self, reservation_id: int) -> bool:
        for c in self.connectors.values():
            if c.reservation is not None and c.reservation.reservation_id == reservation_id:
                c.reservation = None
                self.sync_statuses()
                return True
        return False

    def set_availability(self, connector_id: int, operative: bool) -> str:
        """ChangeAvailability (0 = whole station): Accepted, Scheduled (after a tx) or Rejected."""
        if connector_id != 0 and connector_id not in self.connectors:
            return "Rejected"
        targets = list(self.connectors.values()) if connector_id == 0 else [self.connectors[connector_id]]
        scheduled = False
        for c in targets:
            if operative:
                c.operative, c.inoperative_pending = True, False
            elif c.session is not None:
                c.inoperative_pending, scheduled = True, True
            else:
                c.operative = False
        self.sync_statuses()
        return "Scheduled" if scheduled else "Accepted"

    # -- physics ---------------------------------------------------------------------------------

    def advance(self, now: datetime) -> None:
        """Integrate energy at the current draws from the last step up to `now`."""
        dt = (now - self._last_step).total_seconds()
        if dt <= 0:
            return
        self._last_step = now
        for c in self.connectors.values():
            if c.session is None or c.ev is None or c.current_a <= 0:
                continue
            step = charge(c.ev, c.offered_a, dt, offered_phases=c.phases, draw_factor=self.behaviour.draw_factor)
            c.ev = step.state
            c.energy_wh += step.energy_wh

    def _limits(self, now: datetime) -> tuple[Limit | None, dict[int, Limit | None]]:
        if self.behaviour.ignore_profiles:
            return None, {cid: None for cid in self.connectors}
        applied_before = now - timedelta(seconds=self.behaviour.profile_delay_s)
        self.profiles.forget_replaced(applied_before)
        station = self.profiles.station_limit(now, applied_before=applied_before)
        own: dict[int, Limit | None] = {}
        for cid, c in self.connectors.items():
            s = c.session
            tx = TxContext(s.profile_tx_id, s.started_at) if s is not None else None
            own[cid] = self.profiles.connector_limit(cid, now, tx=tx, applied_before=applied_before)
        return station, own

    def recompute(self, now: datetime) -> None:
        """Set each connector's offered limit and the EV's resulting draw."""
        station, own = self._limits(now)
        drawing = [c for c in self.connectors.values() if c.session is not None and c.ev is not None]
        share: Limit | None = None
        if station is not None and drawing:
            # A station-wide limit is shared equally by the connectors with a session.
            share = Limit(station.amps / len(drawing), station.phases)
        for cid, c in self.connectors.items():
            limit = min_limit(own[cid], share if c in drawing else station)
            c.offered_a = min(self.max_current_a, limit.amps) if limit is not None else self.max_current_a
            if c.session is None or c.ev is None:
                c.current_a, c.phases = 0.0, 3
                continue
            c.phases = min(c.ev.spec.phases, limit.phases) if limit and limit.phases else c.ev.spec.phases
            c.current_a = draw_current(
                c.ev.spec, c.ev.soc, c.offered_a, self.behaviour.draw_factor, target_soc=c.ev.target_soc
            )
        if self.draw_listeners:
            drawn = self.phase_currents()
            if drawn != self._drawn:
                self._drawn = drawn
                for listener in self.draw_listeners:
                    listener(now, drawn)

    def step(self, now: datetime) -> None:
        """One simulation tick: integrate, handle departures/expiries, sample meters, report."""
        self.advance(now)
        for cid, c in self.connectors.items():
            if c.ev is not None and c.departure is not None and now >= c.departure:
                self.unplug(cid, now)
            if c.pending is not None and now >= c.pending.expires:
                c.pending = None
            if c.reservation is not None and now >= c.reservation.expiry:
                rid = c.reservation.reservation_id
                c.reservation = None
                self.emit(ReservationEnded(rid, "Expired"))
        self.recompute(now)
        interval = max(1, self.settings().meter_interval_s)
        for cid, c in self.connectors.items():
            s = c.session
            if s is None:
                continue
            new_state = c.charging_state()
            if new_state != s.charging_state:
                s.charging_state = new_state
                self.emit(
                    TxUpdated(
                        s,
                        (self.sample(cid, now, "Other"),),
                        TxTrigger.CHARGING_STATE,
                        s.next_seq(),
                        new_state,
                    )
                )
            if now >= s.next_sample_at:
                s.next_sample_at = now + timedelta(seconds=interval)
                sample = self.sample(cid, now)
                self.emit(TxUpdated(s, (sample,), TxTrigger.METER_PERIODIC, s.next_seq(), new_state))
        self.sync_statuses()

    def sync_statuses(self, force: bool = False) -> None:
        """Emit StatusChanged for connectors whose state differs from what was last reported."""
        states = {cid: c.state() for cid, c in self.connectors.items()}
        station = (
            ConnectorState.AVAILABLE
            if any(c.operative for c in self.connectors.values())
            else ConnectorState.UNAVAILABLE
        )
        if force or station != self._station_reported:
            self._station_reported = station
            self.emit(StatusChanged(0, station))
        for cid, state in states.items():
            c = self.connectors[cid]
            if force or state != c.reported:
                c.reported = state
                self.emit(StatusChanged(cid, state))
