"""Analytics as pure aggregations: charging patterns, user behaviour, utilisation, peak load against limits.

Storage hands these functions plain records (sessions, status transitions, energy per time bucket) already
filtered to the caller's scope and time range; the heavy lifting over meter values (energy per bucket) is done in
SQL, so what arrives here is at most one record per session, per status change or per bucket. Times are aware
UTC datetimes; hours and weekdays are taken in the time zone the caller asks for.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum

__all__ = [
    "BookingTally",
    "ChargingPatterns",
    "ConnectorUtilisation",
    "EnergyBucket",
    "LoadPoint",
    "LoadReport",
    "SessionRecord",
    "StatusTime",
    "StatusTransition",
    "Summary",
    "UsageClass",
    "UserFigures",
    "charging_patterns",
    "load_report",
    "status_class",
    "summarise",
    "total_utilisation",
    "user_behaviour",
    "utilisation",
    "utilisation_from_times",
]


# -- records (what storage hands in) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One charging session (a transaction). ``account_id`` is the owner of its id token, when known."""

    transaction_id: int
    station_id: str
    evse_id: int
    connector_id: int
    started_at: datetime
    stopped_at: datetime | None = None
    energy_wh: float | None = None
    id_token: str | None = None
    account_id: str | None = None

    @property
    def dwell(self) -> timedelta | None:
        return None if self.stopped_at is None else self.stopped_at - self.started_at


@dataclass(frozen=True, slots=True)
class StatusTransition:
    """A connector status as reported, in effect from ``at`` until the connector's next transition."""

    station_id: str
    evse_id: int
    connector_id: int
    status: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StatusTime:
    """Seconds of a range a connector spent in one status, and when its first known status in the range began
    (the range's start when a status from before it was still in force)."""

    station_id: str
    evse_id: int
    connector_id: int
    status: str
    seconds: float
    first_at: datetime


@dataclass(frozen=True, slots=True)
class EnergyBucket:
    """Energy delivered at a site during ``[start, start + bucket)``."""

    start: datetime
    energy_wh: float


@dataclass(frozen=True, slots=True)
class BookingTally:
    """One account's bookings that ended in the range: how many there were and how many were no-shows."""

    account_id: str
    bookings: int
    no_shows: int


# -- charging patterns ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    """Count, mean, median, 90th percentile and maximum of a sample (all None when it is empty)."""

    count: int
    mean: float | None = None
    median: float | None = None
    p90: float | None = None
    max: float | None = None
    total: float = 0.0


def summarise(values: Iterable[float]) -> Summary:
    ordered = sorted(values)
    if not ordered:
        return Summary(0)
    return Summary(
        count=len(ordered),
        mean=sum(ordered) / len(ordered),
        median=_quantile(ordered, 0.5),
        p90=_quantile(ordered, 0.9),
        max=ordered[-1],
        total=sum(ordered),
    )


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on a sorted, non-empty sequence."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class ChargingPatterns:
    """When cars arrive and leave (counts per hour 0-23 and ISO weekday Monday=0), how long they stay, energy."""

    sessions: int
    completed: int
    arrivals_by_hour: tuple[int, ...]
    departures_by_hour: tuple[int, ...]
    arrivals_by_weekday: tuple[int, ...]
    departures_by_weekday: tuple[int, ...]
    dwell_minutes: Summary
    energy_kwh: Summary


def charging_patterns(sessions: Iterable[SessionRecord], tz: tzinfo) -> ChargingPatterns:
    """Arrival = transaction start, departure = transaction end (sessions still running have none)."""
    arrivals_hour = [0] * 24
    departures_hour = [0] * 24
    arrivals_day = [0] * 7
    departures_day = [0] * 7
    dwell: list[float] = []
    energy: list[float] = []
    count = 0
    for session in sessions:
        count += 1
        arrival = session.started_at.astimezone(tz)
        arrivals_hour[arrival.hour] += 1
        arrivals_day[arrival.weekday()] += 1
        if session.stopped_at is not None:
            departure = session.stopped_at.astimezone(tz)
            departures_hour[departure.hour] += 1
            departures_day[departure.weekday()] += 1
            dwell.append((session.stopped_at - session.started_at).total_seconds() / 60)
        if session.energy_wh is not None:
            energy.append(session.energy_wh / 1000)
    return ChargingPatterns(
        sessions=count,
        completed=len(dwell),
        arrivals_by_hour=tuple(arrivals_hour),
        departures_by_hour=tuple(departures_hour),
        arrivals_by_weekday=tuple(arrivals_day),
        departures_by_weekday=tuple(departures_day),
        dwell_minutes=summarise(dwell),
        energy_kwh=summarise(energy),
    )


# -- user behaviour ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserFigures:
    """One account's (or, for tokens nobody owns, one token's) sessions in the range.

    ``no_show_rate`` is None when no booking data was given, ``overstay_rate`` when no overstay data was given:
    "unknown" must not read as "never".
    """

    account_id: str | None
    id_token: str | None
    sessions: int
    energy_kwh: float
    mean_dwell_minutes: float | None
    bookings: int | None = None
    no_shows: int | None = None
    no_show_rate: float | None = None
    overstays: int | None = None
    overstay_rate: float | None = None


def user_behaviour(
    sessions: Iterable[SessionRecord],
    bookings: Sequence[BookingTally] | None = None,
    overstayed: Mapping[int, bool] | None = None,
) -> list[UserFigures]:
    """Sessions per account (sessions of unowned tokens grouped per token); most sessions first, accounts first.

    ``overstayed`` maps transaction ids to whether the session overstayed; sessions missing from it do not count
    towards the overstay rate.
    """
    grouped: dict[tuple[str | None, str | None], list[SessionRecord]] = defaultdict(list)
    for session in sessions:
        key = (session.account_id, None) if session.account_id is not None else (None, session.id_token)
        grouped[key].append(session)
    tallies = {tally.account_id: tally for tally in bookings or ()}
    for account_id in tallies:
        grouped.setdefault((account_id, None), [])
    figures = [
        _figures(account_id, token, records, tallies.get(account_id) if account_id else None, bookings, overstayed)
        for (account_id, token), records in grouped.items()
    ]
    figures.sort(key=lambda f: (-f.sessions, f.account_id is None, f.account_id or "", f.id_token or ""))
    return figures


def _figures(
    account_id: str | None,
    token: str | None,
    records: list[SessionRecord],
    tally: BookingTally | None,
    bookings: Sequence[BookingTally] | None,
    overstayed: Mapping[int, bool] | None,
) -> UserFigures:
    dwell = [d.total_seconds() / 60 for d in (r.dwell for r in records) if d is not None]
    known_overstays = [overstayed[r.transaction_id] for r in records if overstayed and r.transaction_id in overstayed]
    booked = no_shows = None
    if bookings is not None and account_id is not None:
        booked = tally.bookings if tally else 0
        no_shows = tally.no_shows if tally else 0
    return UserFigures(
        account_id=account_id,
        id_token=token,
        sessions=len(records),
        energy_kwh=sum(r.energy_wh or 0.0 for r in records) / 1000,
        mean_dwell_minutes=sum(dwell) / len(dwell) if dwell else None,
        bookings=booked,
        no_shows=no_shows,
        no_show_rate=(no_shows / booked) if booked and no_shows is not None else None,
        overstays=sum(known_overstays) if overstayed is not None else None,
        overstay_rate=(sum(known_overstays) / len(known_overstays)) if known_overstays else None,
    )


# -- utilisation ---------------------------------------------------------------------------------------------


class UsageClass(StrEnum):
    """What a connector's time was spent on."""

    CHARGING = "charging"  # energy flowing (Charging)
    OCCUPIED = "occupied"  # a car is there but not charging (Preparing, Suspended*, Finishing, Occupied)
    IDLE = "idle"  # free (Available)
    RESERVED = "reserved"  # held for a booking (Reserved)
    OUT_OF_SERVICE = "out_of_service"  # Unavailable or Faulted
    UNKNOWN = "unknown"  # before the first status we know of, or a status we do not recognise


_CLASSES = {
    "Charging": UsageClass.CHARGING,
    "Preparing": UsageClass.OCCUPIED,
    "SuspendedEV": UsageClass.OCCUPIED,
    "SuspendedEVSE": UsageClass.OCCUPIED,
    "Finishing": UsageClass.OCCUPIED,
    "Occupied": UsageClass.OCCUPIED,
    "Available": UsageClass.IDLE,
    "Reserved": UsageClass.RESERVED,
    "Unavailable": UsageClass.OUT_OF_SERVICE,
    "Faulted": UsageClass.OUT_OF_SERVICE,
}


def status_class(status: str) -> UsageClass:
    return _CLASSES.get(status, UsageClass.UNKNOWN)


@dataclass(frozen=True, slots=True)
class ConnectorUtilisation:
    """Seconds of ``[start, end)`` a connector spent in each class; ``occupied_share`` counts charging too."""

    station_id: str
    evse_id: int
    connector_id: int
    seconds: Mapping[UsageClass, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def share(self, usage: UsageClass) -> float:
        total = self.total_seconds
        return self.seconds.get(usage, 0.0) / total if total else 0.0

    @property
    def occupied_share(self) -> float:
        """Share of the time a car was at the connector (charging or not)."""
        return self.share(UsageClass.CHARGING) + self.share(UsageClass.OCCUPIED)


def utilisation(transitions: Iterable[StatusTransition], start: datetime, end: datetime) -> list[ConnectorUtilisation]:
    """Time per class for every connector with a transition, over ``[start, end)``.

    A transition before ``start`` sets the status in effect at ``start`` (storage passes the last one before the
    range); time before a connector's first transition is unknown. Connector 0 (a 1.6 station's own status) is
    not a connector and is left out.
    """
    per_connector: dict[tuple[str, int, int], list[StatusTransition]] = defaultdict(list)
    for transition in transitions:
        if transition.connector_id > 0 and transition.evse_id > 0:
            per_connector[(transition.station_id, transition.evse_id, transition.connector_id)].append(transition)
    result = []
    for key in sorted(per_connector):
        result.append(ConnectorUtilisation(*key, seconds=_time_per_class(per_connector[key], start, end)))
    return result


def _time_per_class(transitions: list[StatusTransition], start: datetime, end: datetime) -> dict[UsageClass, float]:
    seconds: dict[UsageClass, float] = dict.fromkeys(UsageClass, 0.0)
    if end <= start:
        return seconds
    current = UsageClass.UNKNOWN
    since = start
    for transition in sorted(transitions, key=lambda t: t.at):
        if transition.at >= end:
            break
        if transition.at > since:
            seconds[current] += (transition.at - since).total_seconds()
            since = transition.at
        current = status_class(transition.status)
    seconds[current] += (end - since).total_seconds()
    return seconds


def utilisation_from_times(times: Iterable[StatusTime], start: datetime, end: datetime) -> list[ConnectorUtilisation]:
    """What :func:`utilisation` computes, from time already summed per connector and status (in SQL)."""
    per_connector: dict[tuple[str, int, int], list[StatusTime]] = defaultdict(list)
    for item in times:
        if item.connector_id > 0 and item.evse_id > 0:
            per_connector[(item.station_id, item.evse_id, item.connector_id)].append(item)
    result = []
    for key in sorted(per_connector):
        seconds: dict[UsageClass, float] = dict.fromkeys(UsageClass, 0.0)
        for item in per_connector[key]:
            seconds[status_class(item.status)] += item.seconds
        first = min(item.first_at for item in per_connector[key])
        seconds[UsageClass.UNKNOWN] += max(0.0, (min(first, end) - start).total_seconds())
        result.append(ConnectorUtilisation(*key, seconds=seconds))
    return result


def total_utilisation(connectors: Iterable[ConnectorUtilisation]) -> dict[UsageClass, float]:
    """Connector-seconds per class summed over connectors (a site's or a station's total)."""
    totals: dict[UsageClass, float] = dict.fromkeys(UsageClass, 0.0)
    for connector in connectors:
        for usage, value in connector.seconds.items():
            totals[usage] += value
    return totals


# -- peak load and grid impact -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadPoint:
    start: datetime
    power_w: float  # mean power over the bucket


@dataclass(frozen=True, slots=True)
class LoadReport:
    """A site's charging load over a range, in buckets of mean power, against its grid limit.

    ``limit_w`` is the site's power limit (None: not limited); ``over_limit_minutes`` counts the buckets whose
    mean power was above it. Mean power hides spikes shorter than a bucket: pick the bucket accordingly.
    """

    bucket_minutes: float
    energy_kwh: float
    mean_w: float
    peak_w: float
    peak_at: datetime | None
    limit_w: float | None
    peak_share_of_limit: float | None
    headroom_w: float | None
    over_limit_minutes: float
    load_factor: float | None  # mean / peak: 1 is a flat load
    series: tuple[LoadPoint, ...]


def load_report(
    buckets: Iterable[EnergyBucket], start: datetime, end: datetime, bucket: timedelta, limit_w: float | None
) -> LoadReport:
    """Mean power per bucket from the energy delivered in it, peak and time over the limit, over ``[start, end)``."""
    bucket_s = bucket.total_seconds()
    if bucket_s <= 0:
        raise ValueError("bucket must be positive")
    energy: dict[datetime, float] = defaultdict(float)
    for item in buckets:
        if start <= item.start < end:
            energy[item.start] += item.energy_wh
    series = tuple(LoadPoint(at, wh * 3600 / bucket_s) for at, wh in sorted(energy.items()))
    total_wh = sum(energy.values())
    span_s = max((end - start).total_seconds(), 0.0)
    mean_w = total_wh * 3600 / span_s if span_s else 0.0
    peak = max(series, key=lambda p: p.power_w, default=None)
    peak_w = peak.power_w if peak else 0.0
    over = sum(1 for p in series if limit_w is not None and p.power_w > limit_w)
    return LoadReport(
        bucket_minutes=bucket_s / 60,
        energy_kwh=total_wh / 1000,
        mean_w=mean_w,
        peak_w=peak_w,
        peak_at=peak.start if peak else None,
        limit_w=limit_w,
        peak_share_of_limit=peak_w / limit_w if limit_w else None,
        headroom_w=limit_w - peak_w if limit_w is not None else None,
        over_limit_minutes=over * bucket_s / 60,
        load_factor=mean_w / peak_w if peak_w else None,
        series=series,
    )
