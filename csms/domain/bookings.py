"""Bookings: a driver's slot on a connector, the rules a site sets for them, placement and free windows.

Pure values and functions: the service passes ``now`` in and does the I/O. A booking's life::

    scheduled --ReserveNow accepted--> reserved --session starts--> active --session ends--> completed
        |  \\__________________________________/   |
        |      charger refuses / connector faults: reassigned (back to scheduled elsewhere) or failed
        +--> cancelled (driver, operator)    +--> expired at expires_at without a session (a no-show: one strike)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from csms.domain.connectors import ConnectorKey, ConnectorSpec, ConnectorType
from csms.domain.grid import CapacityHold, GridNode, Priority

__all__ = [
    "LIVE",
    "OPEN",
    "Booking",
    "BookingRules",
    "BookingStatus",
    "Busy",
    "Candidate",
    "CapacityExcess",
    "Placement",
    "PlacementRequest",
    "Violation",
    "capacity_excess",
    "check_rules",
    "duration_for",
    "free_windows",
    "overlaps",
    "place",
]


class BookingStatus(StrEnum):
    SCHEDULED = "scheduled"  # placed on a connector; ReserveNow not (yet) accepted
    RESERVED = "reserved"  # the charger holds the connector for the driver's token
    ACTIVE = "active"  # the driver arrived: a session runs under this booking
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # no-show
    FAILED = "failed"  # no connector could take it


OPEN = frozenset({BookingStatus.SCHEDULED, BookingStatus.RESERVED})
LIVE = OPEN | {BookingStatus.ACTIVE}  # what occupies its connector's slot


@dataclass(frozen=True, slots=True)
class Booking:
    id: int
    account_id: str
    id_token: str
    site_id: str
    starts_at: datetime
    ends_at: datetime
    expires_at: datetime
    status: BookingStatus
    created_at: datetime
    updated_at: datetime
    priority: Priority = Priority.STANDARD
    energy_wh: float | None = None
    connector_type: ConnectorType | None = None
    wanted: ConnectorKey | None = None  # None: anywhere at the site
    station_id: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    power_w: float | None = None
    reservation_id: int | None = None
    reserve_any: bool = False  # ReserveNow went to "any connector/EVSE" of the station
    transaction_id: int | None = None
    quote: dict[str, str] | None = None
    reason: str | None = None

    @property
    def key(self) -> ConnectorKey | None:
        if self.station_id is None or self.evse_id is None or self.connector_id is None:
            return None
        return (self.station_id, self.evse_id, self.connector_id)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE


def overlaps(start: datetime, end: datetime, other_start: datetime, other_end: datetime) -> bool:
    """Half-open intervals [start, end) and [other_start, other_end) share an instant."""
    return start < other_end and other_start < end


# -- rules --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookingRules:
    """What one site allows. ``None`` means no limit. Days and weeks are UTC calendar days and ISO weeks."""

    no_overlap: bool = True  # a driver's bookings (at any site) may not overlap
    max_active: int | None = None  # open or active bookings per driver at this site
    max_per_day: int | None = None  # bookings per driver starting on one day at this site
    max_per_week: int | None = None
    max_horizon: timedelta | None = None  # how far ahead a slot may start
    min_notice: timedelta | None = None  # how soon a slot may start at the earliest
    max_duration: timedelta | None = None
    strikes_to_block: int | None = None  # no-shows within strike_window that block booking ...
    strike_window: timedelta = timedelta(days=30)
    block_for: timedelta = timedelta(days=7)  # ... for this long after the last of them


@dataclass(frozen=True, slots=True)
class Violation:
    """A rule that refuses a booking: its stable name, the configured limit, and a sentence for the driver."""

    rule: str
    limit: object
    message: str


def check_rules(
    rules: BookingRules,
    starts_at: datetime,
    ends_at: datetime,
    mine: Iterable[Booking],
    strikes: Iterable[datetime],
    site_id: str,
    now: datetime,
) -> Violation | None:
    """The first rule a new booking [starts_at, ends_at) at ``site_id`` breaks, or None.

    ``mine`` are the driver's bookings at every site (any status); ``strikes`` the times of its no-shows at
    this site.
    """
    if rules.min_notice is not None and starts_at - now < rules.min_notice:
        return Violation(
            "min_notice", _minutes(rules.min_notice), f"a slot must start at least {_human(rules.min_notice)} from now"
        )
    if rules.max_horizon is not None and starts_at - now > rules.max_horizon:
        return Violation(
            "max_horizon", _minutes(rules.max_horizon), f"a slot may start at most {_human(rules.max_horizon)} ahead"
        )
    if rules.max_duration is not None and ends_at - starts_at > rules.max_duration:
        return Violation(
            "max_duration", _minutes(rules.max_duration), f"a booking may last at most {_human(rules.max_duration)}"
        )
    blocked = _blocked_until(rules, sorted(strikes), now)
    if blocked is not None:
        assert rules.strikes_to_block is not None
        return Violation(
            "strikes",
            rules.strikes_to_block,
            f"{rules.strikes_to_block} no-shows within {_human(rules.strike_window)} block booking here until "
            f"{blocked.isoformat()}",
        )
    mine = list(mine)
    live = [b for b in mine if b.is_live]
    if rules.no_overlap:
        clash = next((b for b in live if overlaps(starts_at, ends_at, b.starts_at, b.ends_at)), None)
        if clash is not None:
            return Violation(
                "no_overlap",
                True,
                f"you already have booking {clash.id} "
                f"from {clash.starts_at.isoformat()} to {clash.ends_at.isoformat()}",
            )
    here = [b for b in mine if b.site_id == site_id]
    if rules.max_active is not None and sum(1 for b in here if b.is_live) >= rules.max_active:
        return Violation(
            "max_active", rules.max_active, f"at most {rules.max_active} open bookings per driver at this site"
        )
    counted = [b for b in here if b.status not in (BookingStatus.CANCELLED, BookingStatus.FAILED)]
    if rules.max_per_day is not None:
        same_day = sum(1 for b in counted if b.starts_at.date() == starts_at.date())
        if same_day >= rules.max_per_day:
            return Violation(
                "max_per_day", rules.max_per_day, f"at most {rules.max_per_day} bookings per day at this site"
            )
    if rules.max_per_week is not None:
        week = starts_at.isocalendar()[:2]
        same_week = sum(1 for b in counted if b.starts_at.isocalendar()[:2] == week)
        if same_week >= rules.max_per_week:
            return Violation(
                "max_per_week", rules.max_per_week, f"at most {rules.max_per_week} bookings per week at this site"
            )
    return None


def _blocked_until(rules: BookingRules, strikes: Sequence[datetime], now: datetime) -> datetime | None:
    """When the block from recent no-shows ends, or None when the driver is not blocked now."""
    if rules.strikes_to_block is None or rules.strikes_to_block <= 0:
        return None
    recent = [at for at in strikes if now - rules.strike_window <= at <= now]
    if len(recent) < rules.strikes_to_block:
        return None
    until = recent[-1] + rules.block_for
    return until if until > now else None


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def _human(span: timedelta) -> str:
    minutes = _minutes(span)
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days} day{'s' if days != 1 else ''}"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


# -- placement ----------------------------------------------------------------------------------------------


def duration_for(energy_wh: float, power_w: float) -> timedelta:
    """How long ``energy_wh`` takes at ``power_w``, rounded up to whole minutes."""
    return timedelta(minutes=math.ceil(energy_wh / power_w * 60 - 1e-9))


@dataclass(frozen=True, slots=True)
class Busy:
    """Time a connector is taken: by a booking (``booking_id``) or a session in progress (None)."""

    start: datetime
    end: datetime
    booking_id: int | None = None
    priority: Priority = Priority.STANDARD
    movable: bool = False  # a booking not yet reserved on the charger may move to another connector


@dataclass(frozen=True, slots=True)
class Candidate:
    """A connector at the site with what is known about it."""

    spec: ConnectorSpec
    available: bool = True  # False: faulted, unavailable or otherwise out of service now
    busy: tuple[Busy, ...] = ()


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    starts_at: datetime
    duration: timedelta | None  # None: from energy_wh at each connector's power
    energy_wh: float | None = None
    connector_type: ConnectorType | None = None
    wanted: ConnectorKey | None = None
    priority: Priority = Priority.STANDARD
    exclude: frozenset[ConnectorKey] = field(default_factory=frozenset)
    ignore_booking: int | None = None  # a booking being moved does not conflict with itself


@dataclass(frozen=True, slots=True)
class Placement:
    key: ConnectorKey
    starts_at: datetime
    ends_at: datetime
    power_w: float | None
    displaced: tuple[int, ...] = ()  # lower-priority bookings to move elsewhere first


def place(request: PlacementRequest, candidates: Sequence[Candidate]) -> list[Placement]:
    """Every connector that can take the slot, best first.

    A connector fits when it is bookable, in service, of the wanted plug type, has a known power when the slot is
    sized by energy, and nothing overlaps the slot there. Free connectors come first: for an energy booking the
    most powerful (the shortest slot), for a fixed duration the least powerful that is enough (fast chargers stay
    free for those who need them). When contended, a booking may take a connector whose only conflicts are
    lower-priority bookings that are not yet reserved (those are listed in ``displaced``, to be moved first).
    """
    free: list[tuple[tuple[float, str], Placement]] = []
    contended: list[tuple[tuple[float, str], Placement]] = []
    for candidate in candidates:
        spec = candidate.spec
        if not _fits(request, candidate):
            continue
        if request.duration is not None:
            duration = request.duration
        elif request.energy_wh is not None and spec.max_power_w:
            duration = duration_for(request.energy_wh, spec.max_power_w)
        else:
            continue
        end = request.starts_at + duration
        conflicts = [
            b
            for b in candidate.busy
            if b.booking_id != request.ignore_booking or b.booking_id is None
            if overlaps(request.starts_at, end, b.start, b.end)
        ]
        power = spec.max_power_w or 0.0
        order = (
            -power if request.duration is None else power,
            f"{spec.station_id}/{spec.evse_id:06d}/{spec.connector_id:06d}",
        )
        placement = Placement(spec.key, request.starts_at, end, spec.max_power_w)
        if not conflicts:
            free.append((order, placement))
        elif all(b.booking_id is not None and b.movable and b.priority < request.priority for b in conflicts):
            displaced = tuple(sorted(b.booking_id for b in conflicts if b.booking_id is not None))
            contended.append((order, Placement(spec.key, request.starts_at, end, spec.max_power_w, displaced)))
    free.sort(key=lambda item: item[0])
    contended.sort(key=lambda item: (len(item[1].displaced), item[0]))
    return [p for _, p in free] + [p for _, p in contended]


def _fits(request: PlacementRequest, candidate: Candidate) -> bool:
    spec = candidate.spec
    if not spec.bookable or not candidate.available or spec.key in request.exclude:
        return False
    if request.wanted is not None and spec.key != request.wanted:
        return False
    return request.connector_type is None or spec.connector_type is request.connector_type


# -- grid capacity ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapacityExcess:
    """Holding a booking's capacity would take ``node_id`` over its limit at ``at``: ``held`` against ``limit``
    (per-phase amps, or watts when ``unit`` is W)."""

    node_id: str
    at: datetime
    held: float
    limit: float
    unit: str  # "A" (per phase) or "W"


def capacity_excess(
    new: CapacityHold, holds: Iterable[CapacityHold], nodes: Mapping[str, GridNode]
) -> CapacityExcess | None:
    """Where holding ``new`` on top of ``holds`` would exceed a limit during its slot, or None when it fits.

    Every node from ``new``'s up to its site is checked against the holds on it and below it: per phase against
    its current limit, and over all phases against its power limit, at each instant where the sum or the limit
    changes within the slot (the peak of the held steps is at one of them). Limit windows count where ``nodes``
    carries them.
    """
    chains: dict[str, list[str]] = {}
    overlapping = [h for h in holds if overlaps(h.start, h.end, new.start, new.end)]
    for hold in (new, *overlapping):
        chains.setdefault(hold.node_id, _path_to_site(hold.node_id, nodes))
    for node_id in chains[new.node_id]:
        node = nodes[node_id]
        under = [new, *(h for h in overlapping if node_id in chains[h.node_id])]
        instants = {new.start, *(h.start for h in under if h.start > new.start)}
        instants |= node.change_points(new.start, new.end)
        for at in sorted(instants):
            covering = [h for h in under if h.start <= at < h.end]
            limit_a = node.current_limit_at(at)
            if limit_a is not None:
                for phase in new.phases:
                    held_a = sum(h.current_a for h in covering if phase in h.phases)
                    if held_a > limit_a + 1e-6:
                        return CapacityExcess(node_id, at, held_a, limit_a, "A")
            limit_w = node.power_limit_at(at)
            if limit_w is not None:
                held_w = sum(h.current_a * len(h.phases) * node.voltage_v for h in covering)
                if held_w > limit_w + 1e-3:
                    return CapacityExcess(node_id, at, held_w, limit_w, "W")
    return None


def _path_to_site(node_id: str, nodes: Mapping[str, GridNode]) -> list[str]:
    """``node_id`` and its ancestors up to the site (unknown nodes end the path)."""
    path: list[str] = []
    node = nodes.get(node_id)
    while node is not None and node.id not in path:
        path.append(node.id)
        node = nodes.get(node.parent_id) if node.parent_id is not None else None
    return path


# -- free windows -------------------------------------------------------------------------------------------


def free_windows(
    busy: Iterable[Busy], start: datetime, end: datetime, needed: timedelta
) -> list[tuple[datetime, datetime]]:
    """The gaps in [start, end) between ``busy`` intervals that are at least ``needed`` long."""
    windows: list[tuple[datetime, datetime]] = []
    cursor = start
    for interval in sorted(busy, key=lambda b: b.start):
        if interval.end <= cursor:
            continue
        if interval.start >= end:
            break
        if interval.start - cursor >= needed:
            windows.append((cursor, interval.start))
        cursor = max(cursor, interval.end)
    if end - cursor >= needed:
        windows.append((cursor, end))
    return windows
