"""What the availability, live-event and analytics endpoints need, bundled for the API context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from csms.config import LiveSettings
from csms.service.analytics import AnalyticsService
from csms.service.availability import AvailabilityService
from csms.service.events import Event, EventBus, Subscription
from csms.service.live_events import EventLog

__all__ = ["LiveServices", "StreamHub"]


class StreamHub:
    """The open event streams, so shutdown can end them (an open stream would keep the HTTP server waiting)."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._open: set[Subscription] = set()
        self.closing = False

    def __len__(self) -> int:
        return len(self._open)

    def open(self, accepts: Callable[[Event], bool]) -> Subscription:
        subscription = self._bus.subscribe(accepts)
        self._open.add(subscription)
        return subscription

    def release(self, subscription: Subscription) -> None:
        subscription.close()
        self._open.discard(subscription)

    def close_all(self) -> None:
        self.closing = True
        for subscription in list(self._open):
            self.release(subscription)


@dataclass(frozen=True, slots=True)
class LiveServices:
    settings: LiveSettings
    availability: AvailabilityService
    analytics: AnalyticsService
    log: EventLog
    streams: StreamHub = field(repr=False)
