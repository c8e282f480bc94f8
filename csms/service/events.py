"""A process-local event bus: services publish what changed, live API streams (SSE) subscribe.

Publishing never blocks and never fails the publisher: each subscriber has a bounded queue, and a subscriber that
falls that far behind is dropped (its stream ends with a final ``overflow`` marker) instead of growing memory.
Every event says whose it is (``site_ids``, ``account_id``), so a stream can show each caller only what its role
allows (see :class:`csms.domain.accounts.Principal`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Event", "EventBus", "Subscription"]


@dataclass(frozen=True, slots=True)
class Event:
    """``kind`` is dotted, e.g. ``connector.status``, ``session.started``, ``booking.cancelled``."""

    kind: str
    at: datetime
    data: Mapping[str, Any]
    site_ids: frozenset[str] = field(default_factory=frozenset)
    account_id: str | None = None
    id: int = 0  # assigned by the bus, increasing: the SSE event id


class Subscription:
    """One subscriber's bounded queue. Iterate it; it ends when closed or when it overflowed."""

    def __init__(self, bus: EventBus, accepts: Callable[[Event], bool], capacity: int) -> None:
        self._bus = bus
        self._accepts = accepts
        # One slot more than the capacity, kept for the end marker.
        self._capacity = capacity
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(capacity + 1)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if self.overflowed or not self._accepts(event):
            return
        if self._queue.qsize() >= self._capacity:
            # Too far behind: end this subscriber's stream after what it has (an unbroken run of events), rather
            # than hold events for everyone or make the publisher wait. A client resumes from the last id it saw.
            self.overflowed = True
            self._queue.put_nowait(None)
            return
        self._queue.put_nowait(event)

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when the subscription ended or ``timeout`` passed without one."""
        try:
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that lands as an event arrives.
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None

    def close(self) -> None:
        self._bus.unsubscribe(self)
        if not self._queue.full():
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (event := await self._queue.get()) is not None:
            yield event


class EventBus:
    def __init__(self, capacity: int = 1000) -> None:
        self._capacity = capacity
        self._subscriptions: set[Subscription] = set()
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, accepts: Callable[[Event], bool] = lambda event: True) -> Subscription:
        subscription = Subscription(self, accepts, self._capacity)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(
        self,
        kind: str,
        at: datetime,
        data: Mapping[str, Any],
        *,
        site_ids: frozenset[str] = frozenset(),
        account_id: str | None = None,
    ) -> Event:
        event = Event(kind, at, data, site_ids, account_id, next(self._ids))
        for subscription in list(self._subscriptions):
            subscription.offer(event)
            if subscription.overflowed:
                self._subscriptions.discard(subscription)
        return event
