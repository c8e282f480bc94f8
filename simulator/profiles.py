"""Pure smart-charging model: charging profiles, the per-connector store and the composite limit.

Version-neutral: OCPP 1.6 `ChargePointMaxProfile` and 2.0.1 `ChargingStationMaxProfile` both map to
`Purpose.STATION_MAX`; connector ids double as 2.0.1 EVSE ids (0 = the whole station).

Composite limit at time t (per connector, in A per phase):
    min(STATION_MAX@0, EXTERNAL@0, EXTERNAL@c, TX@c if a TxProfile is active else TX_DEFAULT@c|@0)
Within one purpose the valid profile with the highest stack level that has an active period wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "ChargingProfile",
    "CompositePeriod",
    "InstalledProfile",
    "Limit",
    "ProfileKind",
    "ProfileStore",
    "Purpose",
    "RateUnit",
    "Recurrency",
    "Schedule",
    "SchedulePeriod",
    "TxContext",
    "min_limit",
]

_RECURRENCE_S = {"Daily": 86_400, "Weekly": 604_800}


class Purpose(StrEnum):
    STATION_MAX = "StationMax"
    EXTERNAL = "ExternalConstraints"
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"


class ProfileKind(StrEnum):
    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


class Recurrency(StrEnum):
    DAILY = "Daily"
    WEEKLY = "Weekly"


class RateUnit(StrEnum):
    AMPS = "A"
    WATTS = "W"


@dataclass(frozen=True)
class SchedulePeriod:
    start_period: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True)
class Schedule:
    rate_unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    duration: int | None = None
    start_schedule: datetime | None = None
    min_charging_rate: float | None = None


@dataclass(frozen=True)
class ChargingProfile:
    id: int
    stack_level: int
    purpose: Purpose
    kind: ProfileKind
    schedule: Schedule
    recurrency: Recurrency | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None


@dataclass(frozen=True)
class Limit:
    """A current limit per phase; `phases` restricts the number of phases when set."""

    amps: float
    phases: int | None = None


@dataclass(frozen=True)
class TxContext:
    """The transaction running on a connector, for TxProfile matching and Relative schedules."""

    transaction_id: str | None
    started_at: datetime


@dataclass(frozen=True)
class InstalledProfile:
    connector_id: int
    profile: ChargingProfile
    installed_at: datetime
    # The profile as received on the wire (snake_case keys), for GetChargingProfiles reports.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class CompositePeriod:
    start_offset_s: int
    limit: Limit | None


def min_limit(*limits: Limit | None) -> Limit | None:
    """Tightest of several limits (None = unlimited)."""
    present = [lim for lim in limits if lim is not None]
    if not present:
        return None
    phases = [lim.phases for lim in present if lim.phases is not None]
    return Limit(min(lim.amps for lim in present), min(phases) if phases else None)


def _to_amps(period: SchedulePeriod, unit: RateUnit, voltage: float, phases: int) -> Limit:
    used_phases = period.number_phases or phases
    if unit is RateUnit.WATTS:
        return Limit(period.limit / (voltage * used_phases), period.number_phases)
    return Limit(period.limit, period.number_phases)


def _anchor(ip: InstalledProfile, relative_start: datetime | None) -> datetime | None:
    prof = ip.profile
    if prof.kind is ProfileKind.RELATIVE:
        return relative_start
    # Absolute/Recurring without startSchedule: start when the profile became valid or was installed.
    return prof.schedule.start_schedule or prof.valid_from or ip.installed_at


def _schedule_offset(ip: InstalledProfile, at: datetime, relative_start: datetime | None) -> float | None:
    """Seconds since the start of the schedule occurrence covering `at`, or None if inactive."""
    prof = ip.profile
    if prof.valid_from is not None and at < prof.valid_from:
        return None
    if prof.valid_to is not None and at >= prof.valid_to:
        return None
    anchor = _anchor(ip, relative_start)
    if anchor is None:
        return None
    offset = (at - anchor).total_seconds()
    if prof.kind is ProfileKind.RECURRING:
        offset %= _RECURRENCE_S[(prof.recurrency or Recurrency.DAILY).value]
    if offset < 0:
        return None
    duration = prof.schedule.duration
    if duration is not None and offset >= duration:
        return None
    return offset


def _active_period(ip: InstalledProfile, at: datetime, relative_start: datetime | None) -> SchedulePeriod | None:
    offset = _schedule_offset(ip, at, relative_start)
    if offset is None:
        return None
    current: SchedulePeriod | None = None
    for period in ip.profile.schedule.periods:
        if period.start_period <= offset:
            current = period
        else:
            break
    return current


class ProfileStore:
    """Installed charging profiles of one station, keyed by connector (0 = station).

    A replaced profile is remembered with the time it was replaced, so that a station that applies profiles late
    (``applied_before`` in the queries) keeps obeying the old one until the new one takes effect, as a real charger
    would, instead of falling back to its default limit in between.
    """

    def __init__(self, voltage: float = 230.0, phases: int = 3) -> None:
        self._items: list[InstalledProfile] = []
        self._replaced: list[tuple[InstalledProfile, datetime]] = []  # (profile, when it was replaced)
        self.voltage = voltage
        self.phases = phases
        # Called with each profile installed (after it is stored): tests follow what a station was told, and when.
        self.install_listeners: list[Callable[[InstalledProfile], None]] = []

    def __len__(self) -> int:
        return len(self._items)

    def install(
        self,
        connector_id: int,
        profile: ChargingProfile,
        installed_at: datetime,
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        """Add a profile; one with the same id, or the same connector+purpose+stack level, is replaced."""
        kept: list[InstalledProfile] = []
        for ip in self._items:
            if ip.profile.id == profile.id or (
                ip.connector_id == connector_id
                and ip.profile.purpose is profile.purpose
                and ip.profile.stack_level == profile.stack_level
            ):
                self._replaced.append((ip, installed_at))
            else:
                kept.append(ip)
        self._items = kept
        installed = InstalledProfile(connector_id, profile, installed_at, raw or {})
        self._items.append(installed)
        for listener in self.install_listeners:
            listener(installed)

    def forget_replaced(self, before: datetime) -> None:
        """Drop replaced profiles that no query with ``applied_before >= before`` can see any more."""
        self._replaced = [(ip, until) for ip, until in self._replaced if until > before]

    def find(
        self,
        *,
        profile_ids: Iterable[int] | None = None,
        connector_id: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> list[InstalledProfile]:
        ids = set(profile_ids) if profile_ids is not None else None
        return [
            ip
            for ip in self._items
            if (ids is None or ip.profile.id in ids)
            and (connector_id is None or ip.connector_id == connector_id)
            and (purpose is None or ip.profile.purpose is purpose)
            and (stack_level is None or ip.profile.stack_level == stack_level)
        ]

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> int:
        """Remove matching profiles (all when no criteria); returns how many were removed."""
        ids = [profile_id] if profile_id is not None else None
        doomed = self.find(profile_ids=ids, connector_id=connector_id, purpose=purpose, stack_level=stack_level)
        self._items = [ip for ip in self._items if ip not in doomed]
        return len(doomed)

    def remove_tx_profiles(self, connector_id: int) -> int:
        """Drop TxProfiles of a connector: they end with their transaction."""
        self._replaced = [
            (ip, until)
            for ip, until in self._replaced
            if not (ip.connector_id == connector_id and ip.profile.purpose is Purpose.TX)
        ]
        return self.clear(connector_id=connector_id, purpose=Purpose.TX)

    # -- evaluation -----------------------------------------------------------------------------

    def _in_force(self, applied_before: datetime | None, connector_id: int, purpose: Purpose) -> list[InstalledProfile]:
        """Profiles of a connector and purpose as the station applies them: with ``applied_before``, those
        installed by then, and those replaced since (the station has not taken their replacement yet)."""
        live = self.find(connector_id=connector_id, purpose=purpose)
        if applied_before is None:
            return live
        return [ip for ip in live if ip.installed_at <= applied_before] + [
            ip
            for ip, until in self._replaced
            if ip.connector_id == connector_id
            and ip.profile.purpose is purpose
            and ip.installed_at <= applied_before < until
        ]

    def _group_limit(
        self,
        candidates: list[InstalledProfile],
        at: datetime,
        relative_start: datetime | None,
    ) -> Limit | None:
        ordered = sorted(candidates, key=lambda ip: (ip.profile.stack_level, ip.installed_at), reverse=True)
        for ip in ordered:
            period = _active_period(ip, at, relative_start)
            if period is not None:
                return _to_amps(period, ip.profile.schedule.rate_unit, self.voltage, self.phases)
        return None

    def station_limit(self, at: datetime, *, applied_before: datetime | None = None) -> Limit | None:
        """Station-wide limit (STATION_MAX and EXTERNAL at connector 0)."""
        return min_limit(
            self._group_limit(self._in_force(applied_before, 0, Purpose.STATION_MAX), at, at),
            self._group_limit(self._in_force(applied_before, 0, Purpose.EXTERNAL), at, at),
        )

    def connector_limit(
        self,
        connector_id: int,
        at: datetime,
        *,
        tx: TxContext | None,
        applied_before: datetime | None = None,
        relative_start: datetime | None = None,
    ) -> Limit | None:
        """Limit from the connector's own profiles (Tx over TxDefault, plus EVSE external constraints)."""
        rel = tx.started_at if tx is not None else (relative_start or at)
        tx_limit: Limit | None = None
        if tx is not None:
            tx_profiles = [
                ip
                for ip in self._in_force(applied_before, connector_id, Purpose.TX)
                if ip.profile.transaction_id is None or ip.profile.transaction_id == tx.transaction_id
            ]
            tx_limit = self._group_limit(tx_profiles, at, rel)
        if tx_limit is None:
            own = self._in_force(applied_before, connector_id, Purpose.TX_DEFAULT)
            tx_limit = self._group_limit(own, at, rel)
            if tx_limit is None:
                shared = self._in_force(applied_before, 0, Purpose.TX_DEFAULT)
                tx_limit = self._group_limit(shared, at, rel)
        external = self._group_limit(self._in_force(applied_before, connector_id, Purpose.EXTERNAL), at, rel)
        return min_limit(tx_limit, external)

    def composite_limit(
        self,
        connector_id: int,
        at: datetime,
        *,
        tx: TxContext | None = None,
        applied_before: datetime | None = None,
        relative_start: datetime | None = None,
    ) -> Limit | None:
        """The limit a connector may draw at `at` (connector 0: the station limit)."""
        station = self.station_limit(at, applied_before=applied_before)
        if connector_id == 0:
            return station
        own = self.connector_limit(
            connector_id, at, tx=tx, applied_before=applied_before, relative_start=relative_start
        )
        return min_limit(station, own)

    def _breakpoints(self, connector_id: int, start: datetime, end: datetime, rel: datetime) -> list[datetime]:
        points = {start}
        for ip in self._items:
            if ip.connector_id not in (0, connector_id):
                continue
            prof = ip.profile
            points.update(t for t in (prof.valid_from, prof.valid_to) if t is not None)
            anchor = _anchor(ip, rel)
            if anchor is None:
                continue
            anchors = [anchor]
            if prof.kind is ProfileKind.RECURRING:
                step = _RECURRENCE_S[(prof.recurrency or Recurrency.DAILY).value]
                first = int((start - anchor).total_seconds() // step) - 1
                last = int((end - anchor).total_seconds() // step) + 1
                anchors = [anchor + timedelta(seconds=k * step) for k in range(first, last + 1)]
            for a in anchors:
                points.update(a + timedelta(seconds=p.start_period) for p in prof.schedule.periods)
                if prof.schedule.duration is not None:
                    points.add(a + timedelta(seconds=prof.schedule.duration))
        return sorted(p for p in points if start <= p < end)

    def composite_schedule(
        self,
        connector_id: int,
        start: datetime,
        duration_s: int,
        *,
        tx: TxContext | None = None,
    ) -> list[CompositePeriod]:
        """Composite limit over [start, start+duration) as merged periods (limit None = unlimited)."""
        end = start + timedelta(seconds=duration_s)
        rel = tx.started_at if tx is not None else start
        periods: list[CompositePeriod] = []
        for point in self._breakpoints(connector_id, start, end, rel):
            limit = self.composite_limit(connector_id, point, tx=tx, relative_start=start)
            offset = int(round((point - start).total_seconds()))
            if periods and periods[-1].limit == limit:
                continue
            if periods and periods[-1].start_offset_s == offset:
                periods[-1] = CompositePeriod(offset, limit)
            else:
                periods.append(CompositePeriod(offset, limit))
        return periods
