"""The event bus delivers to every matching subscriber in order and drops a subscriber that falls behind."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.service.events import EventBus

AT = datetime(2026, 11, 23, 12, tzinfo=UTC)


async def test_subscribers_get_matching_events_in_order_with_increasing_ids() -> None:
    """A filtered subscriber sees only its site's events; ids grow; close ends the iteration."""
    bus = EventBus()
    everything = bus.subscribe()
    site_a = bus.subscribe(lambda event: "A" in event.site_ids)
    bus.publish("connector.status", AT, {"status": "Charging"}, site_ids=frozenset({"A"}))
    bus.publish("connector.status", AT, {"status": "Available"}, site_ids=frozenset({"B"}))
    first, second = await everything.next(1), await everything.next(1)
    assert first is not None and second is not None and first.id < second.id
    only = await site_a.next(1)
    assert only is not None and only.data == {"status": "Charging"}
    assert await site_a.next(0.01) is None
    site_a.close()
    assert len(bus) == 1
    assert [event async for event in _closed(bus)] == []


async def _closed(bus: EventBus):  # type: ignore[no-untyped-def]
    subscription = bus.subscribe()
    subscription.close()
    async for event in subscription:
        yield event


async def test_a_subscriber_that_falls_behind_is_dropped_not_the_publisher() -> None:
    """With a full queue the subscriber ends (overflowed), publishing goes on for the others."""
    bus = EventBus(capacity=3)
    slow = bus.subscribe()
    for number in range(10):
        bus.publish("tick", AT, {"n": number})
    assert slow.overflowed and len(bus) == 0
    received = [event.data["n"] async for event in slow]
    assert received == [0, 1, 2]  # an unbroken run up to the capacity, then the stream ends
