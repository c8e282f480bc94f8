"""Session rules per site: a maximum charging time with a warning before it ends, then stop or overstay.

The timers of one session (:class:`SessionTimers`) are set from the site's rules when it starts, and re-armed
from its start when the site's rules change (:meth:`SessionTimers.rearmed`). Overstay billing starts a grace
period after the earlier of: charging completed (the charger reported the car done: 1.6 status SuspendedEV,
2.0.1 chargingState EVConnected or SuspendedEV, after it had been seen charging), or the allotted time ended
when the site moves sessions to overstay at the limit. It ends when the car frees the connector (1.6 status
Available, 2.0.1 chargingState Idle or connector Available) or the transaction ends, whichever the charger
reports first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from csms.domain.tariffs import SessionPrice

__all__ = [
    "Due",
    "LimitAction",
    "OverstayReason",
    "SessionRules",
    "SessionTimers",
    "TrackedSession",
    "due",
    "overstay_start",
]


class LimitAction(StrEnum):
    """What happens when a session reaches the site's maximum charging time."""

    STOP = "stop"  # the CSMS ends it (1.6 RemoteStopTransaction, 2.0.1 RequestStopTransaction)
    OVERSTAY = "overstay"  # it may go on, and overstay billing starts after the grace period


class OverstayReason(StrEnum):
    CHARGING_COMPLETE = "charging_complete"
    TIME_LIMIT = "time_limit"


@dataclass(frozen=True, slots=True)
class SessionRules:
    """A site's rules; ``max_charging_minutes`` None means sessions are not limited in time."""

    max_charging_minutes: int | None = None
    warning_minutes: int = 10
    at_limit: LimitAction = LimitAction.STOP

    def limits(self, started_at: datetime) -> tuple[datetime | None, datetime | None]:
        """The time limit and the warning instant of a session started at ``started_at`` (None: unlimited)."""
        if self.max_charging_minutes is None:
            return None, None
        limit_at = started_at + timedelta(minutes=self.max_charging_minutes)
        return limit_at, max(started_at, limit_at - timedelta(minutes=self.warning_minutes))

    def timers(self, transaction_id: int, started_at: datetime, grace_minutes: int) -> SessionTimers:
        limit_at, warning_at = self.limits(started_at)
        return SessionTimers(
            transaction_id=transaction_id,
            started_at=started_at,
            limit_at=limit_at,
            warning_at=warning_at,
            at_limit=self.at_limit,
            grace=timedelta(minutes=grace_minutes),
        )


class Due(StrEnum):
    WARN = "warn"  # the driver and the operator are told the session ends soon
    STOP = "stop"  # the allotted time ended: end the session
    LIMIT_OVERSTAY = "limit_overstay"  # the allotted time ended: the session goes on into overstay
    OVERSTAY = "overstay"  # overstay billing starts now (grace over)


@dataclass(frozen=True, slots=True)
class SessionTimers:
    """What the timer loop tracks for one session in progress; kept in the database so it survives restarts."""

    transaction_id: int
    started_at: datetime
    limit_at: datetime | None
    warning_at: datetime | None
    at_limit: LimitAction
    grace: timedelta
    warned_at: datetime | None = None
    limit_reached_at: datetime | None = None  # when the limit action was carried out
    charging_completed_at: datetime | None = None
    overstay_started_at: datetime | None = None  # when the overstay was announced
    overstay_reason: OverstayReason | None = None
    connector_freed_at: datetime | None = None  # the car left the connector while the transaction went on

    def completed(self, at: datetime) -> SessionTimers:
        """Charging completed at ``at`` (the first report counts)."""
        return self if self.charging_completed_at is not None else replace(self, charging_completed_at=at)

    def resumed(self) -> SessionTimers:
        """The car charges again: charging was not complete, unless overstay already started."""
        if self.overstay_started_at is not None:
            return self if self.connector_freed_at is None else replace(self, connector_freed_at=None)
        return replace(self, charging_completed_at=None, connector_freed_at=None)

    def freed(self, at: datetime) -> SessionTimers:
        """The car left the connector at ``at`` (the first report counts): overstay, if any, ends there."""
        return self if self.connector_freed_at is not None else replace(self, connector_freed_at=at)

    def rearmed(self, rules: SessionRules, now: datetime) -> SessionTimers:
        """The timers under the site's changed rules, counted from the session's start.

        What was carried out stays done (a limit reached, an overstay started). A warning is given again when the
        new warning instant is still ahead; a session already past the new limit is due at once.
        """
        if self.limit_reached_at is not None:
            return self
        limit_at, warning_at = rules.limits(self.started_at)
        warned_at = self.warned_at
        if warning_at is None or warning_at > now:
            warned_at = None
        return replace(self, limit_at=limit_at, warning_at=warning_at, at_limit=rules.at_limit, warned_at=warned_at)


def overstay_start(timers: SessionTimers) -> tuple[datetime, OverstayReason] | None:
    """When overstay billing starts and why, or None while nothing triggers it."""
    triggers: list[tuple[datetime, OverstayReason]] = []
    if timers.charging_completed_at is not None:
        triggers.append((timers.charging_completed_at, OverstayReason.CHARGING_COMPLETE))
    if timers.limit_at is not None and timers.at_limit is LimitAction.OVERSTAY:
        triggers.append((timers.limit_at, OverstayReason.TIME_LIMIT))
    if not triggers:
        return None
    at, reason = min(triggers, key=lambda trigger: trigger[0])
    return at + timers.grace, reason


def due(timers: SessionTimers, now: datetime) -> list[Due]:
    """What is due for the session at ``now`` and not done yet, in the order to do it."""
    actions: list[Due] = []
    limit_done = timers.limit_reached_at is not None
    if timers.warning_at is not None and timers.warned_at is None and not limit_done and now >= timers.warning_at:
        actions.append(Due.WARN)
    if timers.limit_at is not None and not limit_done and now >= timers.limit_at:
        actions.append(Due.STOP if timers.at_limit is LimitAction.STOP else Due.LIMIT_OVERSTAY)
    start = overstay_start(timers)
    if start is not None and timers.overstay_started_at is None and now >= start[0]:
        if timers.connector_freed_at is None or timers.connector_freed_at > start[0]:
            actions.append(Due.OVERSTAY)
    return actions


@dataclass(frozen=True, slots=True)
class TrackedSession:
    """A session the money side follows: whose it is, what it is charged at (None: no tariff) and its timers."""

    transaction_id: int
    station_id: str
    site_id: str | None
    account_id: str | None
    price: SessionPrice | None
    timers: SessionTimers
