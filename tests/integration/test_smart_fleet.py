"""Smart charging at fleet scale: a simulated working day on one site, measured from the chargers' side.

120 simulated stations (half OCPP 1.6, half 2.0.1) hang from four feeders under one site. Cars arrive over the
day: single- and three-phase cars, some with weak on-board chargers, stations wired with a phase rotation, six that
apply profiles a minute late, six whose cars draw a little less than offered and one that ignores profiles
altogether. The real central system (default planner) runs in this process on the same simulated clock as the
stations: 1 real second is ``SPEED`` simulated seconds, and simulated time stands still while the process waits
for a CPU or collects garbage, so a busy machine stretches the run instead of the latencies. 2.0.1 cars say what
they need (NotifyEVChargingNeeds); for 1.6 cars the driver's app tells the operator's API.

What is checked comes from the simulator's ground truth (what every station really draws, at every instant),
never from what the server believes:

(a) site and feeder load, per phase, never exceed their limits outside the settling windows of
    ``settling_windows`` (after a limit change, after a late station is told something, after the ignoring station
    is): violation-seconds outside them must be 0;
(b) every feasible session is served: feasible means that a linear program knowing the whole day in advance
    serves it in full under handicaps a real-time system cannot avoid (``feasible``); each such car must get
    >= 97 % of what it asked for. A car left short although the server's planner alone would have served it
    (``planner_alone``: the same planner, everything ideal around it) fails the test: the runtime lost it. A car
    the planner alone leaves short too is the planner's known gap: the test then ends as an expected failure
    that lists those cars;
(c) the mid-day cut of the site limit through the API bites, and the fleet is under it within its window.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import highspy
import numpy as np
import ocpp.messages
import pytest

from csms.domain.grid import GridNode
from csms.runtime.app import CentralSystem
from csms.scheduler import plan
from csms.scheduler.model import SchedulerSettings, SessionDemand, Snapshot
from simulator import Behaviour, EVSpec, EVState, SimClock, SimStation
from simulator.ev import charge, draw_current, taper_limit_a
from simulator.model import Protocol
from simulator.site import SiteMeter, StationWiring
from tests.conftest import make_settings
from tests.http_api import admin_client

SEED = 20260603
# Simulated seconds per real second. 600, not 1,200: the settling windows below are real seconds of reaction x SPEED,
# and at 1,200 the 0.4 s the runtime had on a fresh CI-like run under PYTHONASYNCIODEBUG was sometimes not enough
# (a cut met after 0.67 s, 802 simulated s); at 600 it has 0.8 s for the same simulated windows.
SPEED = 600.0

# -- the day (simulated time) -----------------------------------------------------------------------------------

DAY = datetime(2026, 6, 3, tzinfo=UTC)
CLOCK_START = DAY + timedelta(hours=5)
SETUP_DONE = DAY + timedelta(hours=5, minutes=55)  # the quiet time after setup is skipped
FIRST_ARRIVAL = DAY + timedelta(hours=6)
LAST_DEPARTURE = DAY + timedelta(hours=18)
END = LAST_DEPARTURE + timedelta(minutes=10)
CUT_AT = DAY + timedelta(hours=12)  # the site limit is cut through the API...
RESTORE_AT = DAY + timedelta(hours=14)  # ...and given back
CUT_FACTOR = 0.7

# -- the site ---------------------------------------------------------------------------------------------------

STATIONS = 120
FEEDERS = ("feeder-1", "feeder-2", "feeder-3", "feeder-4")
NODES = ("site", *FEEDERS)
ROTATIONS = ((1, 2, 3), (2, 3, 1), (3, 1, 2))  # a third of the stations each: single-phase cars spread out
VOLTAGE = 230.0
SITE_SHARE_OF_PEAK = 0.45  # site limit: this share of the uncontrolled day's peak (busiest phase)
FEEDER_SHARE_OF_PEAK = 0.65  # feeder limits: this share of each feeder's own uncontrolled peak

LATE_STATIONS = 6  # 5 %: a new profile takes effect APPLY_LATENCY_S after it was accepted
APPLY_LATENCY_S = 60.0
UNDERDRAW_STATIONS = 6  # the car draws DRAW_FACTOR of what it is offered
# 3 %: the server learns a car's maximum as what it draws + 1 A whenever it draws 1 A or more below its offer, so a
# car that always draws a share f of any offer is talked down to 1 / (1 - f) A (10 A at f = 0.9): a known limit of
# the rampdown estimate, kept out of this test. Weak on-board chargers (CARS) are the usual way to draw less.
DRAW_FACTOR = 0.97
IGNORING_STATIONS = 1  # accepts profiles and draws its maximum anyway

TICK_S = 30.0  # physics step of each simulated station
METER_S = 300  # between meter values
SLOT_S = 300.0  # the scheduler's planning step
SERVER_SETTLE_S = 150.0  # the server's settle_seconds: how long a station gets to apply a limit before judging it
DEBOUNCE_REAL_S = 0.02

# -- settling windows (simulated seconds) -----------------------------------------------------------------------
# From a limit change until the fleet is back under its limits: the server's debounce, its re-plan and a hundred
# SetChargingProfile round trips (real time, so x SPEED: 0.1-0.3 s measured in this process, which also runs the
# 120 stations), a late station's apply latency, and one physics tick until a station acts on what it was told.
REACTION_REAL_S = 0.8
SETTLE_S = REACTION_REAL_S * SPEED + APPLY_LATENCY_S + TICK_S
# A late station applies what it is told APPLY_LATENCY_S later, at its next physics tick.
APPLY_WINDOW_S = APPLY_LATENCY_S + 2 * TICK_S
# A station that ignores its limit is only found out from its meter values: the server waits settle_seconds after
# writing a limit, reads the overdraw at the next meter value, then re-plans the others around it.
IGNORED_SETTLE_S = SERVER_SETTLE_S + METER_S + SETTLE_S

# -- served ------------------------------------------------------------------------------------------------------
# 97 %, not 100 %: the server knows what a car got only from its meter values (every METER_S), rounds pilots to
# whole amps and paces each car to finish before its departure, so the last few hundred Wh of a session that is
# just feasible can fall on the wrong side of its departure; what a car asked for is measured at plug-in.
SERVED_SHARE = 0.97
LP_LIMIT_MARGIN = 0.95  # the feasibility LP gets 95 % of every limit...
LP_START_DELAY_S = SETTLE_S  # ...cannot charge a car before the server could have reacted to its arrival...
LP_SITE_LIMIT_SHARE = CUT_FACTOR  # ...and assumes the site was cut all day (the real cut comes unannounced)


@dataclass(frozen=True)
class Car:
    name: str
    capacity_kwh: float
    max_current_a: float
    phases: int
    weight: float


CARS = (
    Car("3ph-16A", 64.0, 16.0, 3, 0.42),
    Car("3ph-32A", 52.0, 32.0, 3, 0.08),
    Car("1ph-32A", 58.0, 32.0, 1, 0.18),
    Car("1ph-16A", 38.0, 16.0, 1, 0.17),
    Car("3ph-10A", 40.0, 10.0, 3, 0.15),  # a weak on-board charger: draws less than most stations offer
)


@dataclass(frozen=True)
class StationSpec:
    identity: str
    protocol: Protocol
    feeder: str
    rotation: tuple[int, int, int]
    max_current_a: float
    behaviour: Behaviour


@dataclass(frozen=True)
class Visit:
    station: StationSpec
    arrival: datetime
    departure: datetime
    ev: EVSpec
    soc: float
    target_soc: float
    tag: str

    @property
    def wanted_wh(self) -> float:
        return (self.target_soc - self.soc) * self.ev.capacity_kwh * 1000.0

    @property
    def grid_phases(self) -> tuple[int, ...]:
        return tuple(sorted(self.station.rotation[: self.ev.phases]))

    @property
    def ceiling_a(self) -> float:
        """The least the car can draw per phase anywhere in its request, at full offer: the station's maximum,
        its on-board charger, taper at its target state of charge, under-drawing."""
        ceiling = min(self.ev.max_current_a, self.station.max_current_a, taper_limit_a(self.ev, self.target_soc))
        return ceiling * self.station.behaviour.draw_factor


@dataclass(frozen=True)
class Workload:
    stations: tuple[StationSpec, ...]
    visits: tuple[Visit, ...]
    limits: dict[str, float]  # per node, A per phase, before the cut

    @property
    def ignoring(self) -> set[str]:
        return {s.identity for s in self.stations if s.behaviour.ignore_profiles}


def make_workload(seed: int) -> Workload:
    rng = random.Random(seed)
    stations = plan_stations(rng)
    visits = draw_visits(rng, stations)
    peaks = uncontrolled_peaks(visits)
    limits = {"site": float(round(peaks["site"] * SITE_SHARE_OF_PEAK))}
    limits |= {feeder: float(round(peaks[feeder] * FEEDER_SHARE_OF_PEAK)) for feeder in FEEDERS}
    return Workload(tuple(stations), tuple(visits), limits)


def plan_stations(rng: random.Random) -> list[StationSpec]:
    shuffled = rng.sample(range(STATIONS), STATIONS)
    late = set(shuffled[:LATE_STATIONS])
    weak = set(shuffled[LATE_STATIONS : LATE_STATIONS + UNDERDRAW_STATIONS])
    ignoring = set(shuffled[LATE_STATIONS + UNDERDRAW_STATIONS :][:IGNORING_STATIONS])
    specs = []
    for i in range(STATIONS):
        v201 = i % 2 == 1
        behaviour = Behaviour(
            ignore_profiles=i in ignoring,
            profile_delay_s=APPLY_LATENCY_S if i in late else 0.0,
            draw_factor=DRAW_FACTOR if i in weak else 1.0,
            send_charging_needs=v201,
        )
        specs.append(
            StationSpec(
                identity=f"SF-{i + 1:03d}",
                protocol=Protocol.V201 if v201 else Protocol.V16,
                feeder=FEEDERS[i * len(FEEDERS) // STATIONS],
                rotation=ROTATIONS[i % 3],
                max_current_a=16.0 if i % 4 == 3 else 32.0,
                behaviour=behaviour,
            )
        )
    return specs


def draw_visits(rng: random.Random, stations: Sequence[StationSpec]) -> list[Visit]:
    """Most stations get a morning car staying most of the day; some a second, shorter visit in the afternoon."""
    visits: list[Visit] = []
    for station in stations:
        if rng.random() < 0.05:
            continue  # nobody uses this one today
        arrival = FIRST_ARRIVAL + timedelta(hours=rng.triangular(0.0, 4.0, 1.75))
        stay = timedelta(hours=rng.triangular(2.5, 10.0, 8.0))
        visits.append(_visit(rng, station, arrival, min(arrival + stay, LAST_DEPARTURE), len(visits)))
        if visits[-1].departure <= DAY + timedelta(hours=14) and rng.random() < 0.6:
            arrival = visits[-1].departure + timedelta(minutes=rng.uniform(10, 60))
            stay = timedelta(hours=rng.triangular(1.0, 4.0, 2.0))
            visits.append(_visit(rng, station, arrival, min(arrival + stay, LAST_DEPARTURE), len(visits)))
    return visits


def _visit(rng: random.Random, station: StationSpec, arrival: datetime, departure: datetime, n: int) -> Visit:
    car = rng.choices(CARS, weights=[c.weight for c in CARS])[0]
    ev = EVSpec(name=car.name, capacity_kwh=car.capacity_kwh, max_current_a=car.max_current_a, phases=car.phases)
    target = 0.8 if rng.random() < 0.7 else rng.choice((0.85, 0.9))  # above 0.8 the battery tapers
    return Visit(station, arrival, departure, ev, round(rng.uniform(0.35, 0.7), 3), target, f"TAG{n:04d}")


def uncontrolled_peaks(visits: Sequence[Visit]) -> dict[str, float]:
    """Per node, the highest per-phase current of the day if every car charged at once at the station's maximum."""
    minutes = int((END - FIRST_ARRIVAL).total_seconds() // 60) + 1
    load = {node: np.zeros((3, minutes)) for node in NODES}
    for visit in visits:
        state = EVState(visit.ev, visit.soc, target_soc=visit.target_soc)
        minute = int((visit.arrival - FIRST_ARRIVAL).total_seconds() // 60)
        while minute < minutes and visit.arrival + timedelta(minutes=minute) < visit.departure and not state.satisfied:
            step = charge(state, visit.station.max_current_a, 60, draw_factor=visit.station.behaviour.draw_factor)
            for node in (visit.station.feeder, "site"):
                for phase in visit.grid_phases:
                    load[node][phase - 1, minute] += step.current_a
            state, minute = step.state, minute + 1
    return {node: float(array.max()) for node, array in load.items()}


# -- running the day ---------------------------------------------------------------------------------------------


@dataclass
class Day:
    """What happened, in simulated time: the ground truth and everything the server had to react to."""

    workload: Workload
    meter: SiteMeter
    site_limits: list[tuple[datetime, float]]  # (from, site limit), in order
    plugged: dict[int, datetime] = field(default_factory=dict)  # visit -> when the car was plugged in
    left: dict[int, datetime] = field(default_factory=dict)  # visit -> when the car left
    registers: dict[int, float] = field(default_factory=dict)  # visit -> station meter register at plug-in
    final_registers: dict[str, float] = field(default_factory=dict)
    told: dict[str, list[datetime]] = field(default_factory=dict)  # station -> when it was given each profile
    real_seconds: float = 0.0

    def limit(self, node: str, when: datetime) -> float:
        if node != "site":
            return self.workload.limits[node]
        current = self.site_limits[0][1]
        for start, value in self.site_limits:
            if start <= when:
                current = value
        return current

    def limit_changes(self) -> list[datetime]:
        return [start for start, _ in self.site_limits[1:]]


class Api:
    def __init__(self, csms: CentralSystem) -> None:
        self.http = admin_client(csms.api_port, timeout=10)

    async def send(self, method: str, path: str, body: dict[str, Any]) -> None:
        response = await self.http.request(method, path, json=body)
        assert response.status_code in (200, 201), (method, path, response.text)


async def run_day(tmp_path: Path, workload: Workload) -> Day:
    clock = SimClock(SPEED, start=CLOCK_START, stop_while_starved=True)
    smart = {
        "slot_seconds": SLOT_S,
        "tick_seconds": SLOT_S / SPEED,  # the periodic re-plan, in real seconds
        "debounce_seconds": DEBOUNCE_REAL_S,
        "settle_seconds": SERVER_SETTLE_S,
        "profile_validity_seconds": 3600,  # refreshed 600 s before it lapses: one write per session-hour at most
        "refresh_margin_seconds": 600,
        # Simulated meters are exact: any draw above the limit is an overdraw (the default 2 A allows for meter
        # error, and a station drawing up to that much too much is not subtracted).
        "overdraw_tolerance_a": 0.1,
    }
    settings = make_settings(tmp_path, smart_charging=smart, ocpp={"heartbeat_interval": 86400})
    csms = CentralSystem(settings, clock=clock.now)
    parents: dict[str, str | None] = {"site": None} | {feeder: "site" for feeder in FEEDERS}
    meter = SiteMeter(parents, {s.identity: StationWiring(s.feeder, s.rotation) for s in workload.stations})
    day = Day(workload, meter, [(CLOCK_START, workload.limits["site"])])
    began = time.monotonic()
    await csms.start()
    api = Api(csms)
    sims: dict[str, SimStation] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        await api.send("POST", "/grid-nodes", {"id": "site", "max_current_a": workload.limits["site"]})
        for feeder in FEEDERS:
            await api.send(
                "POST", "/grid-nodes", {"id": feeder, "parent_id": "site", "max_current_a": workload.limits[feeder]}
            )
        for spec in workload.stations:
            wiring = {"node_id": spec.feeder, "rotation": list(spec.rotation), "max_current_a": spec.max_current_a}
            await api.send("PUT", f"/stations/{spec.identity}/wiring", wiring)
        for spec in workload.stations:
            sims[spec.identity] = station = _station(spec, f"ws://127.0.0.1:{csms.ocpp_port}/ocpp", clock)
            meter.attach(station)
            told = day.told.setdefault(spec.identity, [])
            station.core.profiles.install_listeners.append(lambda profile, told=told: told.append(profile.installed_at))
            await station.start()
        await asyncio.wait_for(asyncio.gather(*(s.wait_connected(30) for s in sims.values())), 40)
        await _settled(csms)  # every station has its default limit
        clock.advance_to(SETUP_DONE)
        tasks = [asyncio.create_task(_drive(day, api, sims, i, clock)) for i in range(len(workload.visits))]
        tasks.append(asyncio.create_task(_cut_and_restore(day, api, clock)))
        await clock.sleep_until(END)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        day.real_seconds = time.monotonic() - began
        day.final_registers = {sid: s.core.connectors[1].energy_wh for sid, s in sims.items()}
        errors = {sid: s.errors for sid, s in sims.items() if s.errors}
        assert not errors, errors
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in sims.values()))
        await api.http.aclose()
        await csms.stop()
    return day


def _station(spec: StationSpec, url: str, clock: SimClock) -> SimStation:
    interval = "MeterValueSampleInterval" if spec.protocol is Protocol.V16 else "SampledDataCtrlr.TxUpdatedInterval"
    return SimStation(
        spec.identity,
        url,
        spec.protocol,
        1,
        clock,
        rng=random.Random(spec.identity),
        behaviour=spec.behaviour,
        max_current_a=spec.max_current_a,
        config={interval: str(METER_S)},
        tick_s=TICK_S,
        response_timeout=10.0,
        backoff_s=(0.05, 0.5),
        validate_messages=False,  # the server validates what they send; what it sends them is still checked
    )


async def _settled(csms: CentralSystem) -> None:
    assert csms.smart_loop is not None
    csms.smart_loop.request_replan()
    await asyncio.wait_for(csms.smart_loop.settled(), 10)


async def _drive(day: Day, api: Api, sims: dict[str, SimStation], index: int, clock: SimClock) -> None:
    """One car: arrive, plug in, present the tag, say what it needs, leave (the station unplugs it on time)."""
    visit = day.workload.visits[index]
    await clock.sleep_until(visit.arrival)
    station = sims[visit.station.identity]
    connector = station.core.connectors[1]
    for _ in range(200):  # the previous car leaves at the first physics tick after its departure
        if connector.ev is None:
            break
        await asyncio.sleep(0.005)
    day.plugged[index] = clock.now()
    day.registers[index] = connector.energy_wh
    await station.plug_in(1, EVState(visit.ev, visit.soc, target_soc=visit.target_soc), departure=visit.departure)
    assert await station.present_tag(1, visit.tag)
    if visit.station.protocol is Protocol.V16:
        # A 1.6 car cannot say what it needs: the driver's app tells the operator, and the operator the server.
        for _ in range(1000):
            if connector.session is not None and connector.session.csms_id is not None:
                break
            await asyncio.sleep(0.005)
        needs = {"energy_wh": round(visit.wanted_wh), "departure": visit.departure.isoformat()}
        await api.send("PATCH", f"/charging-sessions/{visit.station.identity}/1", needs)
    await clock.sleep_until(visit.departure)
    for _ in range(200):
        if connector.ev is None:
            break
        await asyncio.sleep(0.005)
    day.left[index] = clock.now()


async def _cut_and_restore(day: Day, api: Api, clock: SimClock) -> None:
    full = day.workload.limits["site"]
    for when, limit in ((CUT_AT, float(round(full * CUT_FACTOR))), (RESTORE_AT, full)):
        await clock.sleep_until(when)
        day.site_limits.append((clock.now(), limit))  # in force from the moment the operator asks
        await api.send("PATCH", "/grid-nodes/site", {"max_current_a": limit})


# -- (a) limits ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    node: str
    phase: int
    start: datetime
    end: datetime
    load_a: float
    limit_a: float

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def violations(day: Day) -> list[Violation]:
    """Every stretch of simulated time in which a node carried more than its limit on a phase."""
    found = []
    cuts = day.limit_changes()
    for node in NODES:
        for step in day.meter.steps(node, FIRST_ARRIVAL, END):
            assert step.end is not None
            bounds = [step.start, *(t for t in cuts if step.start < t < step.end), step.end]
            for start, end in zip(bounds, bounds[1:], strict=False):
                limit = day.limit(node, start)
                for phase, amps in enumerate(step.load_a, start=1):
                    if amps > limit + 1e-6:
                        found.append(Violation(node, phase, start, end, amps, limit))
    return found


Window = tuple[datetime, datetime]


def windows_by_cause(day: Day) -> dict[str, list[Window]]:
    """When the fleet may be over a limit, and why.

    - After the site limit is changed through the API, until the server has re-planned and the stations applied
      their new limits (``SETTLE_S``).
    - After a late station is given a limit, until it applies it (``APPLY_WINDOW_S``): the server takes an
      accepted limit as applied and may hand the room it frees to others at once.
    - After the station that ignores limits starts a session or is given a limit, until the server could have
      seen from its meter values that it draws more (``IGNORED_SETTLE_S``).

    Arrivals and departures need no window: a station's safe share (its TxDefaultProfile) is 0 A on this site,
    so a new car draws nothing until the server has made room for it, and a car leaving only frees capacity.
    """
    late = [
        (when, when + timedelta(seconds=APPLY_WINDOW_S))
        for spec in day.workload.stations
        if spec.behaviour.profile_delay_s
        for when in day.told[spec.identity]
    ]
    ignoring: list[Window] = []
    for index, plugged in day.plugged.items():
        station_id = day.workload.visits[index].station.identity
        if station_id in day.workload.ignoring:
            told = [when for when in day.told[station_id] if when >= plugged]
            ignoring += [(when, when + timedelta(seconds=IGNORED_SETTLE_S)) for when in (plugged, *told)]
    return {
        "limit change": [(when, when + timedelta(seconds=SETTLE_S)) for when in day.limit_changes()],
        "late station": late,
        "ignoring station": ignoring,
    }


def settling_windows(day: Day) -> list[Window]:
    return sorted(window for windows in windows_by_cause(day).values() for window in windows)


def uncovered_seconds(violation: Violation, windows: Sequence[Window]) -> float:
    """Seconds of a violation outside every settling window."""
    start, uncovered = violation.start, 0.0
    for window_start, window_end in sorted(windows):
        if window_end <= start:
            continue
        if window_start >= violation.end:
            break
        uncovered += max(0.0, (min(window_start, violation.end) - start).total_seconds())
        start = max(start, window_end)
        if start >= violation.end:
            return uncovered
    return uncovered + max(0.0, (violation.end - start).total_seconds())


# -- (b) served ----------------------------------------------------------------------------------------------------


def delivered(day: Day) -> dict[int, float]:
    """Energy each car really got: the station's register from its plug-in to the next car's (one connector)."""
    by_station: dict[str, list[int]] = {}
    for index in sorted(day.registers, key=lambda i: day.plugged[i]):
        by_station.setdefault(day.workload.visits[index].station.identity, []).append(index)
    energy = {}
    for station_id, indices in by_station.items():
        ends = [day.registers[i] for i in indices[1:]] + [day.final_registers[station_id]]
        for index, end in zip(indices, ends, strict=True):
            energy[index] = end - day.registers[index]
    return energy


def feasible(day: Day) -> set[int]:
    """The visits that an offline linear program serves in full: a set some schedule within the limits serves
    together. The LP knows the day in advance but carries the handicaps of a real-time system without foresight:

    - 95 % of every limit (whole-amp pilots, phases and car maxima learned from meter values, apply latency);
    - no current before ``LP_START_DELAY_S`` after a car plugged in (the server's reaction time);
    - the site limit at its cut level all day: the cut comes unannounced, so only what survives a cut at any
      moment can be promised;
    - each car at its lowest ceiling over its whole request (taper at its target, weak on-board charger,
      under-drawing station), and the ignoring station's real draw as a fixed load.

    Variables are currents per visit and 5-minute slot; rows hold each node's phases and each visit's request.
    """
    workload = day.workload
    step = timedelta(seconds=SLOT_S)
    starts = [FIRST_ARRIVAL + k * step for k in range(int((END - FIRST_ARRIVAL) / step) + 1)]
    limits = dict(workload.limits) | {"site": workload.limits["site"] * LP_SITE_LIMIT_SHARE}
    fixed: dict[tuple[str, int, int], float] = {}  # what the ignoring stations drew at most, per slot
    for spec in workload.stations:
        if spec.identity not in workload.ignoring:
            continue
        for k, start in enumerate(starts):
            peak = [0.0, 0.0, 0.0]
            for load in day.meter.station_steps(spec.identity, start, start + step):
                peak = [max(a, b) for a, b in zip(peak, load.load_a, strict=True)]
            for station_phase, amps in enumerate(peak):
                for node in (spec.feeder, "site"):
                    key = (node, spec.rotation[station_phase], k)
                    fixed[key] = fixed.get(key, 0.0) + amps

    columns: list[tuple[int, int, float]] = []  # (visit, slot, Wh per amp)
    for index, plugged in day.plugged.items():
        visit = workload.visits[index]
        if visit.station.identity in workload.ignoring:
            continue
        begin = plugged + timedelta(seconds=LP_START_DELAY_S)
        for k, start in enumerate(starts):
            seconds = (min(start + step, visit.departure) - max(start, begin)).total_seconds()
            if seconds > 0:
                columns.append((index, k, seconds / 3600 * VOLTAGE * len(visit.grid_phases)))
    rows: dict[Any, list[tuple[int, float]]] = {}
    for j, (index, k, wh_per_a) in enumerate(columns):
        visit = workload.visits[index]
        rows.setdefault(("energy", index), []).append((j, wh_per_a))
        for node in (visit.station.feeder, "site"):
            for phase in visit.grid_phases:
                rows.setdefault((node, phase, k), []).append((j, 1.0))
    uppers = [
        workload.visits[key[1]].wanted_wh
        if key[0] == "energy"
        else max(0.0, limits[key[0]] * LP_LIMIT_MARGIN - fixed.get(key, 0.0))
        for key in rows
    ]
    x = _solve_lp(
        cost=[wh for _, _, wh in columns],
        upper=[workload.visits[index].ceiling_a for index, _, _ in columns],
        rows=list(rows.values()),
        row_upper=uppers,
    )
    got: dict[int, float] = {}
    for (index, _, wh_per_a), amps in zip(columns, x, strict=True):
        got[index] = got.get(index, 0.0) + amps * wh_per_a
    return {i for i, wh in got.items() if wh >= workload.visits[i].wanted_wh * (1 - 1e-6)}


def _solve_lp(
    cost: list[float], upper: list[float], rows: list[list[tuple[int, float]]], row_upper: list[float]
) -> list[float]:
    """max cost.x subject to 0 <= x <= upper and, per row, sum(coefficient * x) <= row_upper."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    n = len(cost)
    empty_i, empty_f = np.zeros(0, dtype=np.int32), np.zeros(0)
    h.addCols(n, np.array(cost), np.zeros(n), np.array(upper), 0, empty_i, empty_i, empty_f)
    starts = np.cumsum([0] + [len(r) for r in rows[:-1]]).astype(np.int32)
    index = np.array([j for r in rows for j, _ in r], dtype=np.int32)
    value = np.array([v for r in rows for _, v in r])
    h.addRows(len(rows), np.full(len(rows), -highspy.kHighsInf), np.array(row_upper), len(index), starts, index, value)
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return list(h.getSolution().col_value)


def planner_alone(day: Day) -> dict[int, float]:
    """Energy each car gets from the server's planner alone: re-planned every slot with everything known at once
    (needs, phases, car maxima, the cut as it happened) and every station applying its limit at once; the
    ignoring station as a fixed load at what it draws. What the runtime adds to the planner is measured against it.
    """
    workload = day.workload
    settings = SchedulerSettings(slot=timedelta(seconds=SLOT_S))  # as the server builds them, with its defaults
    step = timedelta(seconds=SLOT_S)
    states = {i: EVState(v.ev, v.soc, target_soc=v.target_soc) for i, v in enumerate(workload.visits)}
    got = dict.fromkeys(day.plugged, 0.0)
    now = FIRST_ARRIVAL
    while now < END:
        nodes = (
            GridNode("site", max_current_a=day.limit("site", now)),
            *(GridNode(feeder, "site", max_current_a=workload.limits[feeder]) for feeder in FEEDERS),
        )
        present = [i for i, plugged in day.plugged.items() if plugged <= now < workload.visits[i].departure]
        demands = []
        for i in present:
            visit, state = workload.visits[i], states[i]
            ignoring = visit.station.identity in workload.ignoring
            draw = draw_current(visit.ev, state.soc, visit.station.max_current_a, target_soc=state.target_soc)
            demands.append(
                SessionDemand(
                    id=str(i),
                    node_id=visit.station.feeder,
                    phases=visit.grid_phases,
                    max_current_a=min(visit.ev.max_current_a, visit.station.max_current_a),
                    arrived_at=day.plugged[i],
                    energy_wh=max(0.0, visit.wanted_wh - got[i]),
                    departure=visit.departure,
                    fixed_a=draw if ignoring else None,
                )
            )
        result = plan(Snapshot(nodes, tuple(demands)), now, settings)
        for i in present:
            visit = workload.visits[i]
            ignoring = visit.station.identity in workload.ignoring
            current = visit.station.max_current_a if ignoring else result.sessions[str(i)].current_a
            seconds = (min(now + step, visit.departure) - now).total_seconds()
            charged = charge(states[i], current, seconds, draw_factor=visit.station.behaviour.draw_factor)
            states[i], got[i] = charged.state, got[i] + charged.energy_wh
        now += step
    return got


# -- the test ----------------------------------------------------------------------------------------------------


def cut_reaction_s(day: Day) -> float:
    """Simulated seconds from the API call cutting the site limit until the site is under the new limit."""
    cut = day.limit_changes()[0]
    limit = day.limit("site", cut)
    for step in day.meter.steps("site", cut, END):
        if max(step.load_a) <= limit:
            return (step.start - cut).total_seconds()
    return float("inf")


def first_limit_s(day: Day) -> list[float]:
    """Per car, simulated seconds from plug-in until its station was given its first limit for it."""
    delays = []
    for index, plugged in day.plugged.items():
        told = [t for t in day.told[day.workload.visits[index].station.identity] if t >= plugged]
        if told:
            delays.append((told[0] - plugged).total_seconds())
    return sorted(delays)


def inside_by_cause(day: Day, found: list[Violation]) -> str:
    """Violation-seconds inside the windows, each counted for the first cause (in order) whose window covers it."""
    parts, earlier = [], list[Window]()
    for cause, windows in windows_by_cause(day).items():
        covered = [(v, uncovered_seconds(v, earlier) - uncovered_seconds(v, earlier + windows)) for v in found]
        peak = max((v.load_a - v.limit_a for v, seconds in covered if seconds > 0), default=0.0)
        parts.append(f"{cause} {sum(seconds for _, seconds in covered):.0f} s (up to {peak:.1f} A over)")
        earlier += windows
    return ", ".join(parts)


def report(
    day: Day,
    found: list[Violation],
    outside: list[tuple[Violation, float]],
    fits: set[int],
    alone: dict[int, float],
) -> str:
    visits = day.workload.visits
    energy = delivered(day)
    short = sorted(
        (i for i in fits if energy.get(i, 0.0) < SERVED_SHARE * visits[i].wanted_wh),
        key=lambda i: energy.get(i, 0.0) / visits[i].wanted_wh,
    )
    delays = first_limit_s(day)
    lines = [
        f"{len(visits)} cars, limits {day.workload.limits} A, {day.real_seconds:.1f} real seconds",
        f"violation-seconds {sum(v.seconds for v in found):.0f} (node-phase-seconds), "
        f"{sum(s for _, s in outside):.0f} outside the settling windows; inside: {inside_by_cause(day, found)}",
        *(
            f"  {v.node} L{v.phase} {v.start:%H:%M:%S}-{v.end:%H:%M:%S} {v.load_a:.1f} > {v.limit_a:.0f} A ({s:.0f} s)"
            for v, s in outside[:20]
        ),
        f"cut: under the new limit {cut_reaction_s(day):.0f} s after the API call (window {SETTLE_S:.0f} s)",
        f"first limit after plug-in: median {delays[len(delays) // 2]:.0f} s, max {delays[-1]:.0f} s",
        f"feasible {len(fits)} of {len(visits)}; served {len(fits) - len(short)}; "
        f"lowest share among feasible {min((energy[i] / visits[i].wanted_wh for i in fits), default=1.0):.3f}",
        *(
            f"  short: {visits[i].station.identity} {visits[i].ev.name} {day.plugged[i]:%H:%M}-"
            f"{visits[i].departure:%H:%M} {energy.get(i, 0.0) / 1000:.1f} of {visits[i].wanted_wh / 1000:.1f} kWh "
            f"(the planner alone: {alone.get(i, 0.0) / 1000:.1f} kWh)"
            for i in short[:20]
        ),
    ]
    return "\n".join(lines)


@pytest.mark.timeout(400)  # about 80 s; simulated time stops while the machine is busy, which stretches the run
@pytest.mark.sqlite_only(
    "1 real second is SPEED (600) simulated ones and the settling windows are calibrated to SQLite's commits on "
    "the event loop; on PostgreSQL every commit waits for the writer thread and the server's fsync, milliseconds "
    "that become simulated seconds of lag (seen: a limit overshot 213 s outside the windows on the loaded box)"
)
async def test_fleet_day_keeps_every_limit_and_serves_every_feasible_car(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day of 120 stations: site and feeders never over their limits outside settling windows, the mid-day cut
    through the API bites and is met within its window, and every car a foresighted schedule serves in full gets
    >= 97 % of its request (an expected failure, listing them, where the server's planner alone leaves it short)."""
    # As the simulator's CLI does for fleets: schema checks in a worker thread cost more than the checks.
    monkeypatch.setattr(ocpp.messages, "ASYNC_VALIDATION", False)
    # asyncio's debug mode (PYTHONASYNCIODEBUG, as `make test` runs the suite) records a stack for every task and
    # callback: it doubled the CPU this process needs, which then ran flat out, and its queues made minutes of
    # simulated lag (meter values 8 to 13 minutes late at the 90th percentile, against 14 s without it), so a
    # car that ignores its limit was seen far outside any window a real-time server has. The rest of the suite
    # keeps it on.
    loop = asyncio.get_running_loop()
    debug = loop.get_debug()
    loop.set_debug(False)
    try:
        day = await run_day(tmp_path, make_workload(SEED))
    finally:
        loop.set_debug(debug)
    visits = day.workload.visits
    found = violations(day)
    windows = settling_windows(day)
    outside = [(v, s) for v in found if (s := uncovered_seconds(v, windows)) > 0]
    fits = feasible(day)
    energy = delivered(day)
    alone = planner_alone(day)
    summary = report(day, found, outside, fits, alone)
    logging.getLogger(__name__).info("smart fleet day\n%s", summary)

    assert len(day.plugged) == len(visits) == len(day.left), summary
    # (a) never over a limit outside a settling window
    assert outside == [], summary
    # (c) the cut bit (the site drew more than the cut limit just before) and was met within its window
    cut = day.limit_changes()[0]
    before = day.meter.steps("site", cut - timedelta(minutes=15), cut)
    assert max(max(step.load_a) for step in before) > day.limit("site", cut), summary
    assert cut_reaction_s(day) <= SETTLE_S, summary
    # (b) every feasible car served; the feasible cars are most of the day's, not a handful
    assert len(fits) >= 0.6 * len(visits), summary
    short = [i for i in fits if energy[i] < SERVED_SHARE * visits[i].wanted_wh]
    # The runtime's fault: cars the server's planner serves when everything around it is ideal.
    lost = [i for i in short if alone[i] >= SERVED_SHARE * visits[i].wanted_wh]
    assert lost == [], summary
    if short:  # the planner itself leaves them short: a known gap of the real-time planner, not of the runtime
        pytest.xfail(f"the planner leaves {len(short)} feasible car(s) short:\n{summary}")
