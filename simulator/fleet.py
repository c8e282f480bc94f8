"""A fleet of simulated stations driven by a scenario: station planning, EV arrivals, summary.

Planning and arrival draws are pure functions of a seeded `random.Random`, so a seed reproduces
the same fleet and (up to network timing) the same sequence of visits.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from simulator.clock import SimClock
from simulator.ev import EVSpec, EVState
from simulator.model import Behaviour, ConnectorState, Protocol, StationSnapshot
from simulator.scenario import Scenario
from simulator.station import SimStation
from simulator.tls import TlsOptions

__all__ = [
    "Fleet",
    "FleetSummary",
    "StationPlan",
    "Visit",
    "arrival_probability",
    "draw_visit",
    "plan_stations",
]


@dataclass(frozen=True)
class StationPlan:
    identity: str
    protocol: Protocol
    connectors: int
    behaviour: Behaviour


@dataclass(frozen=True)
class Visit:
    """One EV visit: what arrives, how full, which tag it presents and when it leaves."""

    ev: EVSpec
    soc: float
    id_tag: str
    departure: datetime


@dataclass(frozen=True)
class FleetSummary:
    stations: int
    connected: int
    sessions_started: int
    sessions_completed: int
    active_sessions: int
    energy_kwh: float
    power_kw: float
    messages_sent: int
    queued_messages: int
    reconnects: int
    errors: int
    arrivals: int


def _apportion(count: int, weights: list[float]) -> list[int]:
    """Split `count` into integers proportional to `weights` (largest remainder)."""
    total = sum(weights)
    exact = [count * w / total for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    return counts


def plan_stations(
    scenario: Scenario, rng: random.Random, *, count: int | None = None, protocol: str | None = None
) -> list[StationPlan]:
    """Identities, protocols and behaviours for the fleet (`protocol`: mixed|1.6|2.0.1|None=scenario)."""
    cfg = scenario.stations
    n = count if count is not None else cfg.count
    if protocol in ("1.6", Protocol.V16.value):
        protocols = [Protocol.V16] * n
    elif protocol in ("2.0.1", Protocol.V201.value):
        protocols = [Protocol.V201] * n
    else:
        mix = cfg.protocol_mix if protocol is None else {Protocol.V16: 1.0, Protocol.V201: 1.0}
        kinds = list(mix)
        protocols = [k for k, c in zip(kinds, _apportion(n, [mix[k] for k in kinds]), strict=True) for _ in range(c)]
        rng.shuffle(protocols)
    mix_b = scenario.behaviour
    behaviours = (
        [Behaviour(ignore_profiles=True)] * round(n * mix_b.ignore_profiles_share)
        + [Behaviour(profile_delay_s=mix_b.delay_s)] * round(n * mix_b.delayed_share)
        + [Behaviour(draw_factor=mix_b.underdraw_factor)] * round(n * mix_b.underdraw_share)
    )[:n]
    behaviours += [Behaviour()] * (n - len(behaviours))
    rng.shuffle(behaviours)
    needs = set(rng.sample(range(n), round(n * mix_b.charging_needs_share)))
    width = max(3, len(str(n)))
    return [
        StationPlan(
            identity=f"{cfg.id_prefix}-{i + 1:0{width}d}",
            protocol=protocols[i],
            connectors=cfg.connectors,
            behaviour=Behaviour(
                ignore_profiles=behaviours[i].ignore_profiles,
                profile_delay_s=behaviours[i].profile_delay_s,
                draw_factor=behaviours[i].draw_factor,
                send_charging_needs=i in needs,
            ),
        )
        for i in range(n)
    ]


def arrival_probability(rate_per_hour: float, dt_s: float) -> float:
    """Chance of at least one Poisson arrival in `dt_s` seconds at `rate_per_hour`."""
    return 1.0 - math.exp(-max(0.0, rate_per_hour) * dt_s / 3600.0)


def draw_visit(scenario: Scenario, rng: random.Random, now: datetime) -> Visit:
    models = scenario.ev_models
    model = rng.choices(models, weights=[m.weight for m in models])[0]
    arrivals, stay, tags = scenario.arrivals, scenario.stay, scenario.id_tags
    minutes = rng.triangular(stay.min_minutes, stay.max_minutes, stay.mode_minutes)
    if rng.random() < tags.unknown_share:
        tag = f"UNKNOWN{rng.randrange(10**6):06d}"
    else:
        tag = rng.choice(tags.all_tags())
    return Visit(
        ev=model.spec(scenario.stations.voltage),
        soc=rng.uniform(arrivals.initial_soc_min, arrivals.initial_soc_max),
        id_tag=tag,
        departure=now + timedelta(minutes=minutes),
    )


class Fleet:
    """Creates the stations of a scenario, runs EV arrivals, and reports totals."""

    def __init__(
        self,
        scenario: Scenario,
        url: str,
        *,
        count: int | None = None,
        protocol: str | None = None,
        speed: float | None = None,
        seed: int | None = None,
        password: str | None = None,
        clock: SimClock | None = None,
        tls: TlsOptions | None = None,
    ) -> None:
        """``tls`` replaces the scenario's ``tls_*`` settings; neither is needed for ws:// URLs.

        Raises:
            TlsSetupError: a TLS file cannot be loaded (checked here, before any station starts).
        """
        self.scenario = scenario
        sim = scenario.simulation
        self.rng = random.Random(sim.seed if seed is None else seed)
        self.clock = clock or SimClock(speed or sim.speed, sim.start)
        self.arrivals = 0
        self._tasks: set[asyncio.Task[None]] = set()
        cfg = scenario.stations
        config: dict[str, dict[str, str]] = {
            Protocol.V16: {"MeterValueSampleInterval": str(cfg.meter_interval_s)},
            Protocol.V201: {"SampledDataCtrlr.TxUpdatedInterval": str(cfg.meter_interval_s)},
        }
        tls = tls or _scenario_tls(scenario)
        self.stations = [
            SimStation(
                plan.identity,
                url,
                plan.protocol,
                plan.connectors,
                self.clock,
                password=password or cfg.password,
                rng=random.Random(self.rng.getrandbits(64)),
                behaviour=plan.behaviour,
                max_current_a=cfg.max_current_a,
                voltage=cfg.voltage,
                config=dict(config[plan.protocol]),
                tick_s=sim.tick_s,
                ssl_context=tls.context(plan.identity) if tls is not None else None,
            )
            for plan in plan_stations(scenario, self.rng, count=count, protocol=protocol)
        ]

    async def start(self, stagger_s: float = 0.01) -> None:
        """Start stations a little apart (real seconds) so the CSMS is not hit by one burst."""
        for station in self.stations:
            await station.start()
            await asyncio.sleep(stagger_s)

    async def run(self, duration_s: float | None, stop: asyncio.Event) -> None:
        """Draw arrivals until `duration_s` simulated seconds have passed or `stop` is set."""
        sim = self.scenario.simulation
        end = self.clock.now() + timedelta(seconds=duration_s) if duration_s else None
        while not stop.is_set() and (end is None or self.clock.now() < end):
            self._arrivals(sim.arrival_tick_s)
            try:
                await asyncio.wait_for(stop.wait(), self.clock.real_seconds(sim.arrival_tick_s))
            except TimeoutError:
                pass

    def _arrivals(self, dt_s: float) -> None:
        now = self.clock.now()
        rate = self.scenario.arrivals.per_connector_per_hour[now.hour]
        p = arrival_probability(rate, dt_s)
        for station in self.stations:
            if not station.booted:
                continue
            for cid, conn in station.core.connectors.items():
                if conn.state() is not ConnectorState.AVAILABLE or self.rng.random() >= p:
                    continue
                visit = draw_visit(self.scenario, self.rng, now)
                self.arrivals += 1
                self._spawn(self._visit(station, cid, visit))

    async def _visit(self, station: SimStation, connector_id: int, visit: Visit) -> None:
        # The EV leaves by itself at its departure time (the station's physics tick unplugs it).
        await station.plug_in(connector_id, EVState(visit.ev, visit.soc), departure=visit.departure)
        await station.present_tag(connector_id, visit.id_tag)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, *, graceful: bool = True, timeout: float = 5.0) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(s.stop(graceful=graceful, timeout=timeout) for s in self.stations))

    def snapshots(self) -> list[StationSnapshot]:
        return [s.snapshot() for s in self.stations]

    def summary(self) -> FleetSummary:
        snaps = self.snapshots()
        return FleetSummary(
            stations=len(snaps),
            connected=sum(1 for s in snaps if s.connected),
            sessions_started=sum(s.sessions_started for s in snaps),
            sessions_completed=sum(s.sessions_completed for s in snaps),
            active_sessions=sum(s.active_sessions for s in snaps),
            energy_kwh=sum(s.energy_wh for s in snaps) / 1000.0,
            power_kw=sum(s.power_w for s in snaps) / 1000.0,
            messages_sent=sum(st.messages_sent for st in self.stations),
            queued_messages=sum(s.queued_messages for s in snaps),
            reconnects=sum(st.reconnects for st in self.stations),
            errors=sum(len(st.errors) for st in self.stations),
            arrivals=self.arrivals,
        )


def _scenario_tls(scenario: Scenario) -> TlsOptions | None:
    cfg = scenario.stations
    if cfg.tls_ca_file is None and cfg.tls_cert_file is None:
        return None
    return TlsOptions(cfg.tls_ca_file, cfg.tls_cert_file, cfg.tls_key_file, cfg.tls_key_password)
