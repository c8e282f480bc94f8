"""Synthetic charging days shaped like the ACN workplace data (research/scheduling-anchors.md §6), EU variant.

A site is a 3-level tree: the site (grid connection) -> feeders -> stations, each station with one or two EVSEs.
Arrivals follow the Caltech arrival-hour histogram; stays and energies come from the published empirical quantiles
through a piecewise-linear inverse CDF (a lognormal fits the short-visit mode poorly), tied by a Gaussian copula
because long stays ask for more energy. Everything is drawn from a seeded numpy Generator, so a seed is a day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np

from csms.domain.grid import GridNode, Phases, Priority, grid_phases
from csms.scheduler.model import SessionDemand, Snapshot

__all__ = [
    "CAR_TYPES",
    "DAY_START",
    "SITE_ID",
    "VOLTAGE_V",
    "Behaviour",
    "CarType",
    "Evse",
    "LimitKind",
    "Session",
    "Site",
    "Station",
    "Workload",
    "WorkloadConfig",
    "build_site",
    "generate_day",
    "inverse_cdf",
    "plugged_in_snapshot",
    "with_site_limit",
]

# §6: sessions per arrival clock hour 00..23, 954 Caltech sessions (March 2019).
ARRIVAL_HOUR_COUNTS = (0, 1, 0, 0, 1, 20, 32, 152, 166, 109, 77, 69, 67, 30, 35, 31, 33, 29, 40, 29, 19, 10, 1, 3)
# (cumulative probability, value). The inner points are the published quantiles; the 0 and 1 end points (and the
# stay's p98) are our assumptions, chosen so that the means land near the published ones (6.5 h, 9.3 kWh).
Quantiles = tuple[tuple[float, float], ...]
STAY_H_QUANTILES: Quantiles = (
    (0.0, 0.25), (0.10, 1.28), (0.25, 2.58), (0.50, 6.08), (0.75, 8.81), (0.90, 10.5), (0.98, 14.0), (1.0, 24.0)
)  # fmt: skip
ENERGY_KWH_QUANTILES: Quantiles = (
    (0.0, 0.3), (0.10, 1.07), (0.25, 3.78), (0.50, 6.67), (0.75, 12.2), (0.90, 18.6), (0.99, 45.9), (1.0, 58.0)
)  # fmt: skip

VOLTAGE_V = 230.0
SITE_ID = "site"
DAY_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
# Cyclic phase rotations only (RST, STR, TRS): installers rotate stations to spread single-phase cars.
ROTATIONS: tuple[Phases, ...] = ((1, 2, 3), (2, 3, 1), (3, 1, 2))


class Behaviour(StrEnum):
    OBEYS = "obeys"
    REJECTS = "rejects"  # answers every SetChargingProfile with Rejected, so it runs at its hardware maximum
    IGNORES = "ignores"  # accepts every profile and lets the car draw what it wants


class LimitKind(StrEnum):
    POWER = "power"  # one aggregate limit in W per node (phase-blind)
    PHASE = "phase"  # a current limit in A on each phase of each node


@dataclass(frozen=True, slots=True)
class CarType:
    name: str
    phases: int
    max_current_a: float  # per phase, the on-board charger's limit
    capacity_kwh: tuple[float, float]  # uniform range
    share: float


# EU mix: 60% three-phase; 10% single-phase capped at 16 A (plug-in hybrids, older cars).
CAR_TYPES = (
    CarType("3ph-11kW", 3, 16.0, (50.0, 80.0), 0.45),
    CarType("3ph-22kW", 3, 32.0, (60.0, 100.0), 0.15),
    CarType("1ph-7kW", 1, 32.0, (30.0, 65.0), 0.30),
    CarType("1ph-3.7kW", 1, 16.0, (12.0, 40.0), 0.10),
)


@dataclass(frozen=True, slots=True)
class Station:
    id: str
    feeder_id: str
    rotation: Phases  # grid phases wired to the station's L1, L2, L3
    max_current_a: float  # per EVSE and phase
    evse_count: int
    behaviour: Behaviour


@dataclass(frozen=True, slots=True)
class Evse:
    id: str
    station: int  # index into Site.stations


@dataclass(frozen=True, slots=True)
class Site:
    nodes: tuple[GridNode, ...]  # the site node has no limit here: see with_site_limit
    stations: tuple[Station, ...]
    evses: tuple[Evse, ...]
    feeder_limit_a: dict[str, float]  # per phase


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    evse: int  # index into Site.evses
    arrival_s: float  # seconds after the day's start
    departure_s: float  # when the car really leaves
    estimated_departure_s: float  # what the driver told us
    requested_wh: float
    car_phases: int
    car_max_a: float
    capacity_wh: float
    initial_soc: float
    priority: Priority


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    evse_count: int = 100
    sessions_per_evse: float = 0.72  # weekday mean; the day's count is Poisson around it
    two_evse_share: float = 0.5  # stations with two EVSEs
    evse_32a_share: float = 0.5  # stations with 32 A EVSEs (the rest 16 A)
    stations_per_feeder: int = 10
    feeder_fraction: float = 0.5  # feeder limit per phase as a share of its EVSEs' nameplate
    reject_share: float = 0.05
    ignore_share: float = 0.0
    fleet_share: float = 0.2
    departure_error_h: float = 1.0  # standard deviation of the driver's estimate
    stay_energy_correlation: float = 0.6  # Gaussian copula: long stays ask for more energy


@dataclass(frozen=True, slots=True)
class Workload:
    site: Site
    sessions: tuple[Session, ...]
    start: datetime
    seed: int
    config: WorkloadConfig
    turned_away: int  # arrivals that found every EVSE taken

    def station_of(self, session: Session) -> Station:
        return self.site.stations[self.site.evses[session.evse].station]

    def max_current_a(self, session: Session) -> float:
        """What the car can draw per phase on its EVSE (the EVSE's and the car's limits)."""
        return min(self.station_of(session).max_current_a, session.car_max_a)

    def grid_phases(self, session: Session) -> Phases:
        return grid_phases(session.car_phases, self.station_of(session).rotation)

    @property
    def end_s(self) -> float:
        return max((s.departure_s for s in self.sessions), default=0.0)


def inverse_cdf(quantiles: Quantiles, u: np.ndarray) -> np.ndarray:
    """Piecewise-linear inverse CDF through (probability, value) points."""
    probs, values = zip(*quantiles, strict=True)
    return np.asarray(np.interp(u, probs, values), dtype=float)


_erf = np.vectorize(math.erf, otypes=[float])


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + _erf(z / math.sqrt(2.0))))


def build_site(config: WorkloadConfig, rng: np.random.Generator) -> Site:
    """Stations of one or two EVSEs (16 or 32 A, random phase rotation) grouped into feeders under one site."""
    stations: list[Station] = []
    evses: list[Evse] = []
    while len(evses) < config.evse_count:
        index = len(stations)
        count = min(2 if rng.random() < config.two_evse_share else 1, config.evse_count - len(evses))
        u = rng.random()
        behaviour = (
            Behaviour.REJECTS
            if u < config.reject_share
            else Behaviour.IGNORES
            if u < config.reject_share + config.ignore_share
            else Behaviour.OBEYS
        )
        station = Station(
            id=f"station-{index:05d}",
            feeder_id=f"feeder-{index // config.stations_per_feeder:04d}",
            rotation=ROTATIONS[int(rng.integers(len(ROTATIONS)))],
            max_current_a=32.0 if rng.random() < config.evse_32a_share else 16.0,
            evse_count=count,
            behaviour=behaviour,
        )
        stations.append(station)
        evses += [Evse(f"{station.id}/{k + 1}", index) for k in range(count)]
    nameplate: dict[str, float] = {}
    for station in stations:
        nameplate[station.feeder_id] = (
            nameplate.get(station.feeder_id, 0.0) + station.max_current_a * station.evse_count
        )
    feeder_limit = {f: float(math.floor(a * config.feeder_fraction)) for f, a in nameplate.items()}
    nodes = [GridNode(SITE_ID, voltage_v=VOLTAGE_V)]
    nodes += [GridNode(f, SITE_ID, max_current_a=a, voltage_v=VOLTAGE_V) for f, a in feeder_limit.items()]
    # A station's supply is rated for all its EVSEs at once: the node is there for the tree, it never binds.
    nodes += [
        GridNode(s.id, s.feeder_id, max_current_a=s.max_current_a * s.evse_count, voltage_v=VOLTAGE_V) for s in stations
    ]
    return Site(tuple(nodes), tuple(stations), tuple(evses), feeder_limit)


def with_site_limit(site: Site, kind: LimitKind, limit: float | None) -> tuple[GridNode, ...]:
    """The site's nodes with the site limit (W for POWER, A per phase for PHASE) and the feeders' in that kind.

    With the POWER kind every limit is an aggregate (feeders get their per-phase rating x 3 phases x 230 V and
    stations no limit), so phases never matter; with PHASE every node limits each phase's current.
    """
    nodes: list[GridNode] = []
    for node in site.nodes:
        if node.id == SITE_ID:
            if kind is LimitKind.POWER:
                nodes.append(replace(node, max_current_a=None, max_power_w=limit))
            else:
                nodes.append(replace(node, max_current_a=limit, max_power_w=None))
        elif kind is LimitKind.POWER:
            feeder_a = site.feeder_limit_a.get(node.id)
            power = None if feeder_a is None else feeder_a * node.voltage_v * 3
            nodes.append(replace(node, max_current_a=None, max_power_w=power))
        else:
            nodes.append(node)
    return tuple(nodes)


def _car_types(rng: np.random.Generator, n: int) -> np.ndarray:
    shares = np.array([c.share for c in CAR_TYPES])
    return rng.choice(len(CAR_TYPES), size=n, p=shares / shares.sum())


def generate_day(config: WorkloadConfig, seed: int, start: datetime = DAY_START) -> Workload:
    """One weekday of sessions on a freshly drawn site."""
    site_rng, session_rng, estimate_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    site = build_site(config, site_rng)
    rng = session_rng
    n = int(rng.poisson(config.sessions_per_evse * config.evse_count))
    hours = np.asarray(ARRIVAL_HOUR_COUNTS, dtype=float)
    arrival_s = (rng.choice(24, size=n, p=hours / hours.sum()) + rng.random(n)) * 3600.0
    rho = config.stay_energy_correlation
    z_stay = rng.standard_normal(n)
    z_energy = rho * z_stay + math.sqrt(1.0 - rho * rho) * rng.standard_normal(n)
    stay_h = inverse_cdf(STAY_H_QUANTILES, _normal_cdf(z_stay))
    energy_kwh = inverse_cdf(ENERGY_KWH_QUANTILES, _normal_cdf(z_energy))
    types = _car_types(rng, n)
    capacity_kwh = np.array([rng.uniform(*CAR_TYPES[t].capacity_kwh) for t in types])
    energy_kwh = np.minimum(energy_kwh, 0.95 * capacity_kwh)
    # Drivers stop between 70 and 95% state of charge, so most sessions end in the taper above 80%. Not 100%:
    # under a linear taper the charge approaches full exponentially and the last percent would take hours.
    end_soc = rng.uniform(0.7, 0.95, size=n)
    initial_soc = np.maximum(end_soc - energy_kwh / capacity_kwh, 0.05)
    fleet = rng.random(n) < config.fleet_share
    noise_h = estimate_rng.standard_normal(n) * config.departure_error_h
    departure_s = arrival_s + stay_h * 3600.0
    estimate_s = np.maximum(departure_s + noise_h * 3600.0, arrival_s + 900.0)

    free_at = np.zeros(len(site.evses))
    sessions: list[Session] = []
    turned_away = 0
    for i in np.argsort(arrival_s, kind="stable"):
        free = np.flatnonzero(free_at <= arrival_s[i])
        if free.size == 0:
            turned_away += 1
            continue
        evse = int(free[rng.integers(free.size)])
        free_at[evse] = departure_s[i]
        car = CAR_TYPES[int(types[i])]
        sessions.append(
            Session(
                id=f"s{len(sessions):05d}",
                evse=evse,
                arrival_s=float(arrival_s[i]),
                departure_s=float(departure_s[i]),
                estimated_departure_s=float(estimate_s[i]),
                requested_wh=float(energy_kwh[i] * 1000.0),
                car_phases=car.phases,
                car_max_a=car.max_current_a,
                capacity_wh=float(capacity_kwh[i] * 1000.0),
                initial_soc=float(initial_soc[i]),
                priority=Priority.FLEET if fleet[i] else Priority.STANDARD,
            )
        )
    return Workload(site, tuple(sessions), start, seed, config, turned_away)


def plugged_in_snapshot(
    evse_count: int, seed: int, kind: LimitKind = LimitKind.PHASE, limit_fraction: float = 0.3
) -> tuple[Snapshot, datetime]:
    """A busy moment for the speed runs: every EVSE has a car, the site limit at a share of the nameplate.

    Cars arrived in the last 4 h, leave within 10 h, want energy from the workload's distribution; single-phase
    cars sit on their station's rotated L1. Returns the snapshot and its ``now``.
    """
    rng = np.random.default_rng(seed)
    config = WorkloadConfig(evse_count=evse_count)
    site = build_site(config, rng)
    now = DAY_START + timedelta(hours=11)
    types = _car_types(rng, evse_count)
    energy_kwh = inverse_cdf(ENERGY_KWH_QUANTILES, rng.random(evse_count))
    sessions: list[SessionDemand] = []
    nameplate_a = 0.0
    for k, evse in enumerate(site.evses):
        station = site.stations[evse.station]
        car = CAR_TYPES[int(types[k])]
        max_a = min(station.max_current_a, car.max_current_a)
        nameplate_a += max_a * car.phases / 3
        sessions.append(
            SessionDemand(
                id=f"p{k:05d}",
                node_id=station.id,
                phases=grid_phases(car.phases, station.rotation),
                max_current_a=max_a,
                arrived_at=now - timedelta(hours=float(rng.uniform(0.0, 4.0))),
                energy_wh=float(energy_kwh[k] * 1000.0),
                departure=now + timedelta(hours=float(rng.uniform(0.25, 10.0))),
                priority=Priority.FLEET if rng.random() < config.fleet_share else Priority.STANDARD,
                voltage_v=VOLTAGE_V,
                offered_a=float(rng.choice([0.0, 6.0, max_a])),
                fixed_a=max_a if station.behaviour is Behaviour.REJECTS else None,
            )
        )
    limit = limit_fraction * (nameplate_a if kind is LimitKind.PHASE else nameplate_a * 3 * VOLTAGE_V)
    return Snapshot(with_site_limit(site, kind, limit), tuple(sessions)), now
