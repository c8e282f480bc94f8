"""Grid-limit smart charging: from what chargers report to the limits they are sent.

The service keeps one tracker per EVSE with a session on a wired station: what the car has drawn, what we
offered and when, whether the station follows its limits, and what the driver or car asked for. ``replan``
turns that and the grid setup into a scheduler ``Snapshot``, plans, and sends the changes worth sending:
decreases first, increases only once every decrease was accepted. A station that rejects a limit, does not
answer, is offline or draws more than it was given is planned as a fixed load (its last accepted limit, its
hardware maximum, or what it draws) until it can be steered again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from csms.config import SmartChargingSettings
from csms.domain.charging import ChargingProfile
from csms.domain.commands import SetChargingProfile
from csms.domain.ev_charging import PHASE_IN_USE_A, ChargingNeeds, learn_max_current, measure, phases_drawing
from csms.domain.grid import IEC_MIN_CURRENT_A, CapacityHold, GridConfig, Priority, StationWiring, grid_phases
from csms.domain.metering import MeterSample
from csms.domain.stations import ConnectorState, ConnectorStatus, StationId
from csms.domain.transactions import Transaction
from csms.errors import StationError, StorageError
from csms.scheduler import Algorithm, plan
from csms.scheduler.changes import ChangePolicy, LimitChange, select_changes
from csms.scheduler.loads import add_unmanaged, carry_up
from csms.scheduler.model import Period, Plan, SchedulerSettings, SessionDemand, Snapshot, current_at
from csms.service.charging_profiles import (
    Capabilities,
    above_somewhere,
    capabilities_from_answer,
    capability_query,
    profile_end,
    schedule_in_amps,
    station_max_profile,
    tx_default_profile,
    tx_profile,
)
from csms.service.commands import CommandService
from csms.storage.smart_charging import SessionSettings, put_session_settings
from csms.storage.sql import SqlStorage

__all__ = ["EvseSession", "GridConfigSource", "SmartChargingService", "safe_share", "session_key"]

log = structlog.get_logger(__name__)

# Above this many sessions a plan takes long enough (tens of ms) to be worth moving off the event loop.
_PLAN_IN_THREAD_ABOVE = 300


class GridConfigSource(Protocol):
    def config(self, now: datetime) -> GridConfig: ...


@dataclass(slots=True)
class EvseSession:
    """What we know about one EVSE's charging session."""

    station_id: str
    evse_id: int
    transaction_id: int
    charger_tx_id: str
    started_at: datetime
    meter_start_wh: float | None
    energy_wh: float | None = None  # latest register reading
    measured_a: tuple[float, float, float] | None = None  # station phases L1..L3
    measured_at: datetime | None = None
    phases: int | None = None  # phases the car was seen drawing on
    learned_max_a: float | None = None
    offered_a: float | None = None  # the limit the station holds now for this session (see offered_schedule)
    # The whole schedule the station accepted, in A from absolute instants, and when it lapses: the station steps
    # from one period to the next by itself, so a later plan that no longer wants a later step must say so.
    offered_schedule: tuple[Period, ...] = ()
    offered_until: datetime | None = None
    written_at: datetime | None = None
    refused_at: datetime | None = None  # last rejection or missing answer
    refused_reason: str | None = None
    overdrawing: bool = False
    # It has drawn, and now takes nothing of a limit it could use (full, or suspended by the car): planned at its
    # minimum, so it can resume, until it draws again.
    idle: bool = False
    needs: ChargingNeeds = field(default_factory=ChargingNeeds)
    priority: Priority = Priority.STANDARD
    priority_reason: str | None = None
    priority_set_by: str | None = None  # an account id, "ev" for the car's own needs...

    @classmethod
    def of(cls, transaction: Transaction) -> EvseSession:
        return cls(
            transaction.station_id,
            transaction.evse_id,
            transaction.id,
            transaction.charger_tx_id,
            transaction.started_at,
            transaction.meter_start_wh,
            energy_wh=transaction.meter_start_wh,
        )

    @property
    def key(self) -> str:
        return session_key(self.station_id, self.evse_id)

    @property
    def delivered_wh(self) -> float:
        if self.energy_wh is None or self.meter_start_wh is None:
            return 0.0
        return max(0.0, self.energy_wh - self.meter_start_wh)


@dataclass(slots=True)
class _Station:
    capabilities: Capabilities = field(default_factory=Capabilities)
    tx_default_a: float | None = None  # the TxDefaultProfile limit the station accepted
    station_max_a: float | None = None  # the station-wide ceiling it accepted (ChargePointMax/ChargingStationMax)


class SmartChargingService:
    def __init__(
        self,
        settings: SmartChargingSettings,
        grid: GridConfigSource,
        commands: CommandService,
        clock: Callable[[], datetime] | None = None,
        storage: SqlStorage | None = None,
    ) -> None:
        self._settings = settings
        # Needs and priorities are kept in the database so a restart re-plans with them, not with defaults.
        self._storage = storage
        self._unsaved: set[str] = set()  # session keys whose needs or priority changed since the last save
        self._clock = clock
        self._grid = grid
        self._commands = commands
        self._request_replan: Callable[[], None] = _nothing
        self._holds: Callable[[datetime], tuple[CapacityHold, ...]] = _no_holds
        self._request_configure: Callable[[str], None] = _nothing_for
        self._sessions: dict[str, EvseSession] = {}
        self._stations: dict[str, _Station] = {}
        self._plan: Plan | None = None
        self._scheduler = SchedulerSettings(
            slot=timedelta(seconds=settings.slot_seconds),
            horizon=timedelta(hours=settings.horizon_hours),
            default_stay=timedelta(hours=settings.default_stay_hours),
            default_energy_wh=settings.default_energy_kwh * 1000,
        )
        self._policy = ChangePolicy(settings.threshold_a, timedelta(seconds=settings.min_write_interval_seconds))
        self._algorithm = Algorithm(settings.algorithm)
        # Per grid config (a new object after every change): each wired station and its node's voltage.
        self._wired: tuple[GridConfig | None, dict[str, tuple[StationWiring, float]]] = (None, {})

    def hold_capacity(self, holds: Callable[[datetime], tuple[CapacityHold, ...]]) -> None:
        """Where capacity kept free for bookings comes from; every plan leaves it free."""
        self._holds = holds

    def bind(self, request_replan: Callable[[], None], request_configure: Callable[[str], None]) -> None:
        """Who to ask for a re-plan and for configuring a station (the runtime's loop), once it exists."""
        self._request_replan = request_replan
        self._request_configure = request_configure

    async def load(self, transactions: list[Transaction]) -> None:
        """Track the transactions in progress when the process starts, with the needs and priority saved for them."""
        for transaction in transactions:
            session = EvseSession.of(transaction)
            self._sessions[session.key] = session
        if self._storage is None:
            return
        saved = await self._storage.session_settings(t.id for t in transactions)
        for session in self._sessions.values():
            settings = saved.get(session.transaction_id)
            if settings is not None:
                session.needs = settings.needs
                session.priority = settings.priority
                session.priority_reason = settings.priority_reason
                session.priority_set_by = settings.priority_set_by

    # -- what chargers report (called by ChargerService after each commit; cheap, never raises) ------------

    def transaction_started(self, transaction: Transaction, now: datetime) -> None:
        session = EvseSession.of(transaction)
        previous = self._sessions.get(session.key)
        if previous is not None and previous.transaction_id == transaction.id:
            return
        if previous is not None and previous.needs != ChargingNeeds() and previous.transaction_id == 0:
            session.needs = previous.needs  # needs announced before the transaction (2.0.1 ISO 15118 order)
            session.priority_set_by = previous.priority_set_by
            self._unsaved.add(session.key)
        self._sessions[session.key] = session
        self._replan_if_managed(transaction.station_id, now)

    def transaction_ended(self, transaction: Transaction, now: datetime) -> None:
        session = self._sessions.get(session_key(transaction.station_id, transaction.evse_id))
        if session is not None and session.transaction_id == transaction.id:
            del self._sessions[session.key]
            self._unsaved.discard(session.key)
            self._replan_if_managed(transaction.station_id, now)

    def metered(self, station_id: str, evse_id: int, samples: tuple[MeterSample, ...], now: datetime) -> None:
        session = self._sessions.get(session_key(station_id, evse_id))
        if session is None:
            return
        measurement = measure(samples)
        if measurement is None:
            return
        if session.measured_at is not None and measurement.timestamp < session.measured_at:
            return  # a replayed old reading says nothing about now
        if measurement.energy_wh is not None:
            session.energy_wh = measurement.energy_wh
            if session.meter_start_wh is None:
                session.meter_start_wh = measurement.energy_wh
        if measurement.current_a is None:
            return
        session.measured_a = measurement.current_a
        session.measured_at = measurement.timestamp
        _roll_offered(session, now)
        if self._observe_draw(session, measurement.current_a, now):
            self._replan_if_managed(station_id, now)

    def connector_changed(self, state: ConnectorState, now: datetime) -> None:
        if state.status in (ConnectorStatus.FAULTED, ConnectorStatus.UNAVAILABLE):
            self._replan_if_managed(state.station_id, now)

    def station_booted(self, station_id: str, now: datetime) -> None:
        self._stations.pop(station_id, None)  # a rebooted charger may have lost its profiles and settings
        for session in self._sessions.values():
            if session.station_id == station_id:
                session.offered_a, session.offered_schedule, session.offered_until = None, (), None
        if self._is_managed(station_id, now):
            self._request_configure(station_id)

    def charging_state(self, transaction: Transaction, state: str, now: datetime) -> None:
        pass  # what a car draws is seen in its meter values

    def charging_needs(self, station_id: str, evse_id: int, needs: ChargingNeeds, now: datetime) -> bool:
        """The car's needs (2.0.1 NotifyEVChargingNeeds); True when we will answer with a schedule."""
        if not self._is_managed(station_id, now):
            return False
        key = session_key(station_id, evse_id)
        session = self._sessions.get(key)
        if session is None:
            # Needs may precede the transaction: keep them on a placeholder until it starts.
            session = EvseSession(station_id, evse_id, 0, "", now, None)
            self._sessions[key] = session
        session.needs = needs
        session.priority_set_by = session.priority_set_by or "ev"
        if session.transaction_id:
            self._unsaved.add(key)  # saved by the re-plan this requests
        self._request_replan()
        return True

    # -- what operators and drivers set -----------------------------------------------------------------

    def set_needs(
        self,
        station_id: str,
        evse_id: int,
        needs: ChargingNeeds | None = None,
        priority: Priority | None = None,
        reason: str | None = None,
        set_by: str | None = None,
    ) -> EvseSession | None:
        """Change a session's needs and/or priority (``reason``: why; ``set_by``: who); the site is re-planned.

        The change is saved by the next re-plan; ``save`` saves it at once (the API does, before answering).
        """
        session = self._sessions.get(session_key(station_id, evse_id))
        if session is None or session.transaction_id == 0:
            return None
        if needs is not None:
            session.needs = needs
        if priority is not None:
            session.priority = priority
            session.priority_reason = reason
            session.priority_set_by = set_by
        self._unsaved.add(session.key)
        self._request_replan()
        return session

    async def save(self, now: datetime) -> None:
        """Commit every session's needs and priority changed since the last save."""
        if self._storage is None or not self._unsaved:
            return
        keys, self._unsaved = self._unsaved, set()
        writes = [
            write
            for key in sorted(keys)
            if (session := self._sessions.get(key)) is not None and session.transaction_id
            for write in put_session_settings(_settings_of(session), now)
        ]
        try:
            await self._storage.write(writes)
        except StorageError:
            self._unsaved |= keys  # try again with the next save
            raise

    # -- views --------------------------------------------------------------------------------------------

    @property
    def latest_plan(self) -> Plan | None:
        return self._plan

    def sessions(self) -> list[EvseSession]:
        return [s for s in self._sessions.values() if s.transaction_id]

    def session(self, station_id: str, evse_id: int) -> EvseSession | None:
        session = self._sessions.get(session_key(station_id, evse_id))
        return session if session is not None and session.transaction_id else None

    def measured_loads(self, now: datetime) -> dict[str, tuple[float, float, float]]:
        """Per grid node, the measured current per grid phase of the sessions under it plus unmanaged load."""
        config = self._grid.config(now)
        nodes = {node.id: node for node in config.nodes}
        wirings = {w.station_id: w for w in config.wirings}
        loads = {node_id: [0.0, 0.0, 0.0] for node_id in nodes}
        for session in self.sessions():
            wiring = wirings.get(session.station_id)
            if wiring is None or session.measured_a is None or wiring.node_id not in loads:
                continue
            own = loads[wiring.node_id]
            for station_phase, amps in enumerate(session.measured_a):
                own[wiring.rotation[station_phase] - 1] += amps
        add_unmanaged(nodes, loads)
        carry_up(nodes, loads)
        return {node_id: (a[0], a[1], a[2]) for node_id, a in loads.items()}

    # -- planning and applying ---------------------------------------------------------------------------

    def snapshot(self, now: datetime) -> Snapshot:
        wired = self._wired_stations(now)
        for session in self._sessions.values():
            _roll_offered(session, now)
        demands = [
            self._demand(session, *wired[session.station_id], now)
            for session in self._sessions.values()
            if session.transaction_id and session.station_id in wired
        ]
        return Snapshot(self._grid.config(now).nodes, tuple(demands), self._holds(now))

    async def replan(self, now: datetime) -> Plan:
        try:
            await self.save(now)
        except StorageError as exc:
            log.warning("session needs not saved; will retry", error=str(exc))
        snapshot = self.snapshot(now)
        if len(snapshot.sessions) > _PLAN_IN_THREAD_ABOVE:
            result = await asyncio.to_thread(plan, snapshot, now, self._scheduler, self._algorithm)
        else:
            result = plan(snapshot, now, self._scheduler, self._algorithm)
        self._plan = result
        if result.overloaded:
            log.warning("grid nodes overloaded by load we cannot steer", nodes=list(result.overloaded))
        steerable = {d.id for d in snapshot.sessions if d.fixed_a is None}
        decreases, increases = self._changes(result, steerable, now)
        accepted = await asyncio.gather(*(self._send(change, result, now) for change in decreases))
        if not all(accepted):
            # Someone kept a higher limit than planned: re-plan around it before raising anyone else.
            self._request_replan()
            return result
        await asyncio.gather(*(self._send(change, result, now) for change in increases))
        return result

    async def configure_station(self, station_id: str, now: datetime) -> None:
        """Learn what the station's smart charging can do and give it its safe share as TxDefaultProfile."""
        wired = self._wired_stations(now).get(station_id)
        version = self._commands.version(station_id)
        if wired is None or version is None:
            return
        wiring, voltage = wired
        station = self._stations.setdefault(station_id, _Station())
        try:
            result = await self._commands.execute(StationId(station_id), capability_query(version), now)
        except StationError as exc:
            log.info("station did not report smart charging capabilities", station_id=station_id, error=str(exc))
        else:
            station.capabilities = capabilities_from_answer(version, result.response)
        watts_per_amp = voltage * wiring.phases
        if self._settings.station_max_at_boot:
            ceiling = station_max_profile(wiring.max_current_a, station.capabilities, watts_per_amp)
            if await self._install(station_id, ceiling, "station ceiling", now):
                station.station_max_a = wiring.max_current_a
        if self._settings.tx_default_at_boot:
            share = safe_share(self._grid.config(now), wiring)
            default = tx_default_profile(share, station.capabilities, watts_per_amp)
            if await self._install(station_id, default, "default limit", now):
                station.tx_default_a = share

    async def _install(self, station_id: str, profile: ChargingProfile, what: str, now: datetime) -> bool:
        """Send a station-wide profile (connector/EVSE 0); whether the station accepted it."""
        try:
            answer = await self._commands.execute(StationId(station_id), SetChargingProfile(0, profile), now)
        except StationError as exc:
            log.warning(
                "station did not take a station-wide profile", profile=what, station_id=station_id, error=str(exc)
            )
            return False
        if answer.status != "Accepted":
            log.warning(
                "station refused a station-wide profile", profile=what, station_id=station_id, status=answer.status
            )
            return False
        return True

    # -- internals ---------------------------------------------------------------------------------------

    def _is_managed(self, station_id: str, now: datetime) -> bool:
        if not self._settings.enabled:
            return False
        return self._wiring(station_id, now) is not None

    def _wiring(self, station_id: str, now: datetime) -> StationWiring | None:
        wired = self._wired_stations(now).get(station_id)
        return wired[0] if wired is not None else None

    def _wired_stations(self, now: datetime) -> dict[str, tuple[StationWiring, float]]:
        config = self._grid.config(now)
        if self._wired[0] is not config:
            voltages = {node.id: node.voltage_v for node in config.nodes}
            self._wired = (config, {w.station_id: (w, voltages[w.node_id]) for w in config.wirings})
        return self._wired[1]

    def _replan_if_managed(self, station_id: str, now: datetime) -> None:
        if self._is_managed(station_id, now):
            self._request_replan()

    def _observe_draw(self, session: EvseSession, current: tuple[float, float, float], now: datetime) -> bool:
        """Update what we learn from a reading; True when it deviates enough to re-plan."""
        drawing = phases_drawing(current)
        peak = max(current)
        deviates = False
        if drawing and drawing != session.phases:
            session.phases = drawing
            deviates = True
        settled = (
            session.written_at is None or (now - session.written_at).total_seconds() >= self._settings.settle_seconds
        )
        offered = session.offered_a
        if offered is None or not settled:
            return deviates
        if offered > 0:  # a paused car says nothing about whether it would draw
            idle = session.phases is not None and peak < PHASE_IN_USE_A
            if idle != session.idle:
                session.idle = idle
                deviates = True
        over = peak > offered + self._settings.overdraw_tolerance_a
        if over != session.overdrawing:
            session.overdrawing = over
            deviates = True
            if over:
                log.warning(
                    "station draws more than its limit",
                    station_id=session.station_id,
                    evse_id=session.evse_id,
                    limit_a=offered,
                    drawn_a=peak,
                )
        wiring = self._wiring(session.station_id, now)
        hardware_max = wiring.max_current_a if wiring is not None else offered
        learned = learn_max_current(session.learned_max_a, offered, peak, hardware_max)
        if learned != session.learned_max_a:
            freed = (session.learned_max_a or offered) - (learned or offered)
            session.learned_max_a = learned
            deviates = deviates or abs(freed) >= self._settings.threshold_a
        return deviates

    def _demand(self, session: EvseSession, wiring: StationWiring, voltage: float, now: datetime) -> SessionDemand:
        phases = session.phases or wiring.phases
        phases = min(phases, wiring.phases)
        needs = session.needs
        maximum = min(x for x in (wiring.max_current_a, needs.max_current_a, session.learned_max_a) if x is not None)
        energy = None if needs.energy_wh is None else max(0.0, needs.energy_wh - session.delivered_wh)
        minimum = max(IEC_MIN_CURRENT_A, needs.min_current_a or 0.0)
        return SessionDemand(
            id=session.key,
            node_id=wiring.node_id,
            phases=grid_phases(phases, wiring.rotation),
            max_current_a=maximum,
            arrived_at=session.started_at,
            energy_wh=energy,
            departure=needs.departure,
            priority=session.priority,
            min_current_a=minimum,
            voltage_v=voltage,
            offered_a=session.offered_a,
            fixed_a=self._fixed_draw(session, wiring, now),
            probing=self._probing(session, wiring, now),
            max_now_a=self._max_now(session, minimum, now),
        )

    def _max_now(self, session: EvseSession, minimum: float, now: datetime) -> float | None:
        """What it can be given until the next plan, if less than its maximum: its minimum while its car is idle
        (the rest goes to the others; a car that resumes shows it and is re-planned), its current limit (0 when
        paused) while an increase would be held back (``ChangePolicy.held_at``)."""
        if session.idle:
            return minimum
        return self._policy.held_at(session.offered_a, session.written_at, now)

    def _probing(self, session: EvseSession, wiring: StationWiring, now: datetime) -> bool:
        """Whether a new session is admitted first to learn its phases (see SessionDemand.probing): until its car
        has drawn, and only for ``phase_probe_seconds`` after it started."""
        if session.phases is not None or wiring.phases == 1:
            return False
        return (now - session.started_at).total_seconds() < self._settings.phase_probe_seconds

    def _fixed_draw(self, session: EvseSession, wiring: StationWiring, now: datetime) -> float | None:
        """What an unsteerable session is assumed to draw, or None when we can steer it."""
        if session.overdrawing and session.measured_a is not None:
            # It ignores its limit: plan around what it draws, or its limit if it draws less right now.
            return max(max(session.measured_a), session.offered_a or 0.0)
        default = self._default_limit(session.station_id)
        # Never limited by us, a charger runs at its TxDefaultProfile, or at its hardware maximum without one.
        unlimited = default if default is not None else wiring.max_current_a
        if not self._commands.is_connected(session.station_id):
            # Offline, its TxProfile lapses to the default: plan for the larger of the two.
            return unlimited if session.offered_a is None else max(session.offered_a, unlimited)
        if session.refused_at is not None and (now - session.refused_at).total_seconds() < self._settings.retry_seconds:
            assumed = unlimited if session.offered_a is None else session.offered_a
            if session.measured_a is not None and session.measured_at and session.measured_at >= session.refused_at:
                # Metered since it refused: a car only draws less as it fills, so what it draws (+1 A) is enough.
                return min(assumed, math.ceil(max(session.measured_a)) + 1.0)
            return assumed
        return None

    def _changes(self, result: Plan, steerable: set[str], now: datetime) -> tuple[list[LimitChange], list[LimitChange]]:
        offered = {key: s.offered_a for key, s in self._sessions.items() if key in steerable}
        written = {key: s.written_at for key, s in self._sessions.items() if s.written_at is not None}
        steerable_plan = replace(result, sessions={k: v for k, v in result.sessions.items() if k in steerable})
        decreases, increases = select_changes(steerable_plan, offered, written, now, self._policy)
        # A session we never limited runs at its station's TxDefaultProfile when the station took one: a first
        # limit above that raises it, so it waits with the increases until the decreases making room are accepted.
        for change in [c for c in decreases if c.previous_a is None]:
            default = self._default_limit(self._sessions[change.session_id].station_id)
            if default is not None and change.current_a > default:
                decreases.remove(change)
                increases.append(change)
        changed = {c.session_id for c in (*decreases, *increases)}
        # A station steps through the schedule it holds by itself: one whose limit now is unchanged but whose
        # schedule would later give it more than this plan does (a limit window added since, or room this plan
        # hands to someone else after a window) is sent the new schedule now, with the decreases.
        for key in steerable - changed:
            session = self._sessions[key]
            if self._later_step_too_high(session, result.sessions[key].periods, now):
                decreases.append(LimitChange(key, result.sessions[key].current_a, session.offered_a))
                changed.add(key)
        # A limit about to lapse is re-sent even when unchanged, so a live station never decays to its default.
        margin = timedelta(seconds=self._settings.refresh_margin_seconds)
        validity = timedelta(seconds=self._settings.profile_validity_seconds)
        for key in steerable:
            session = self._sessions[key]
            if key in changed or session.written_at is None or session.offered_a is None:
                continue
            if session.written_at + validity - margin <= now:
                current = result.sessions[key].current_a
                if current <= session.offered_a:
                    decreases.append(LimitChange(key, current, session.offered_a))
                else:
                    increases.append(LimitChange(key, current, session.offered_a))
        return decreases, increases

    def _later_step_too_high(self, session: EvseSession, periods: tuple[Period, ...], now: datetime) -> bool:
        """Whether the schedule the station holds goes above the one it would be sent now, at some time before
        either lapses. Only a schedule of several periods can: one period is the limit now, which select_changes
        has compared already."""
        if len(session.offered_schedule) < 2 and len(periods) < 2:
            return False
        if session.offered_until is None:
            return False
        watts_per_amp = self._watts_per_amp(session, now)
        wanted = self._tx_profile(session, periods, now, watts_per_amp)
        return above_somewhere(
            session.offered_schedule,
            schedule_in_amps(wanted, watts_per_amp),
            now,
            min(session.offered_until, profile_end(wanted)),
        )

    def _tx_profile(
        self, session: EvseSession, periods: tuple[Period, ...], now: datetime, watts_per_amp: float
    ) -> ChargingProfile:
        station = self._stations.setdefault(session.station_id, _Station())
        return tx_profile(
            session.evse_id,
            session.charger_tx_id,
            periods,
            now,
            timedelta(seconds=self._settings.profile_validity_seconds),
            self._settings.tx_profile_stack_level,
            station.capabilities,
            watts_per_amp,
        )

    async def _send(self, change: LimitChange, result: Plan, now: datetime) -> bool:
        session = self._sessions.get(change.session_id)
        if session is None:
            return True  # the session ended meanwhile: nothing to limit
        watts_per_amp = self._watts_per_amp(session, now)
        profile = self._tx_profile(session, result.sessions[change.session_id].periods, now, watts_per_amp)
        try:
            answer = await self._commands.execute(
                StationId(session.station_id), SetChargingProfile(session.evse_id, profile), now
            )
        except StationError as exc:
            self._refused(session, str(exc), now)
            return False
        if answer.status != "Accepted":
            self._refused(session, f"answered {answer.status}", now)
            return False
        session.offered_a = change.current_a
        session.offered_schedule = schedule_in_amps(profile, watts_per_amp)
        session.offered_until = profile_end(profile)
        # When the station took it, not when the plan began: with hundreds of sends the difference is the
        # settle time, and compliance is judged from then on.
        session.written_at = max(now, self._clock()) if self._clock is not None else now
        session.refused_at = None
        session.refused_reason = None
        return True

    def _watts_per_amp(self, session: EvseSession, now: datetime) -> float:
        wired = self._wired_stations(now).get(session.station_id)
        if wired is None:
            return 230.0 * (session.phases or 3)
        wiring, voltage = wired
        return voltage * min(session.phases or wiring.phases, wiring.phases)

    def _default_limit(self, station_id: str) -> float | None:
        """The TxDefaultProfile limit the station accepted, if any."""
        station = self._stations.get(station_id)
        return station.tx_default_a if station is not None else None

    def _refused(self, session: EvseSession, reason: str, now: datetime) -> None:
        log.warning(
            "station did not take its limit", station_id=session.station_id, evse_id=session.evse_id, reason=reason
        )
        session.refused_at = now
        session.refused_reason = reason


def _roll_offered(session: EvseSession, now: datetime) -> None:
    """Move ``offered_a`` to the period of the accepted schedule in force at ``now`` (the station has)."""
    schedule = session.offered_schedule
    if schedule and session.offered_until is not None and now < session.offered_until:
        session.offered_a = current_at(schedule, now, before=schedule[0].current_a)


def _settings_of(session: EvseSession) -> SessionSettings:
    return SessionSettings(
        session.transaction_id,
        session.station_id,
        session.evse_id,
        session.needs,
        session.priority,
        session.priority_reason,
        session.priority_set_by,
    )


def session_key(station_id: str, evse_id: int) -> str:
    """A session's id in snapshots and plans: one session per EVSE at a time."""
    return f"{station_id}/{evse_id}"


def _no_holds(_: datetime) -> tuple[CapacityHold, ...]:
    return ()


def _nothing() -> None:
    pass


def _nothing_for(_: str) -> None:
    pass


def safe_share(config: GridConfig, wiring: StationWiring) -> float:
    """Per-EVSE current that keeps every node above the station within its limit if every wired station under
    it draws at once (each counted with one EVSE), rounded down to whole amps; 0 when that is below 6 A."""
    nodes = {node.id: node for node in config.nodes}
    # Per node: how many wired stations are under it, and their watts per amp (at that node's voltage).
    stations_under: dict[str, int] = {}
    phases_under: dict[str, int] = {}
    for other in config.wirings:
        node_id: str | None = other.node_id
        while node_id is not None:
            stations_under[node_id] = stations_under.get(node_id, 0) + 1
            phases_under[node_id] = phases_under.get(node_id, 0) + other.phases
            node_id = nodes[node_id].parent_id
    share = wiring.max_current_a
    node_id = wiring.node_id
    while node_id is not None:
        node = nodes[node_id]
        if node.max_current_a is not None:
            share = min(share, node.max_current_a / stations_under[node_id])
        if node.max_power_w is not None:
            share = min(share, node.max_power_w / (node.voltage_v * phases_under[node_id]))
        node_id = node.parent_id
    share = float(int(share))
    return share if share >= IEC_MIN_CURRENT_A else 0.0
