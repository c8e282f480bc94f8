"""The live-event role filter and the resume buffer (csms.service.live_events), without a server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from csms.api.events import sse_frame
from csms.domain.accounts import AccountId, Principal, Role
from csms.service.events import Event, EventBus
from csms.service.live_events import EventLog, visible_to

AT = datetime(2026, 11, 23, tzinfo=UTC)
ADMIN = Principal(AccountId("root"), Role.ADMIN, "k0")
OPERATOR = Principal(AccountId("op"), Role.OPERATOR, "k1", frozenset({"site-a"}))
ALICE = Principal(AccountId("alice"), Role.DRIVER, "k2")
BOB = Principal(AccountId("bob"), Role.DRIVER, "k3")


def event(site: str | None, account: str | None) -> Event:
    return Event("session.started", AT, {}, frozenset({site}) if site else frozenset(), account)


@pytest.mark.parametrize(
    ("principal", "site", "account", "visible"),
    [
        (ADMIN, None, None, True),
        (ADMIN, "site-b", "bob", True),
        (OPERATOR, "site-a", None, True),
        (OPERATOR, "site-a", "bob", True),
        (OPERATOR, "site-b", None, False),
        (OPERATOR, None, "op", False),  # an event at no site is for admins only
        (ALICE, "site-a", "alice", True),
        (ALICE, "site-a", "bob", False),
        (ALICE, "site-a", None, False),  # site-wide events (statuses) are not a driver's own
        (BOB, None, "alice", False),
    ],
)
def test_visible_to(principal: Principal, site: str | None, account: str | None, visible: bool) -> None:
    """Admins see all, operators their sites' events, drivers only events of their own account."""
    assert visible_to(principal)(event(site, account)) is visible


def test_event_log_keeps_the_last_events_and_says_when_older_ones_are_gone() -> None:
    """Resuming returns the events after an id while they are kept, and None once some were dropped."""
    bus = EventBus()
    log = EventLog(bus, capacity=3)
    assert log.since(0) == []
    ids = [bus.publish("connector.status", AT, {"n": n}).id for n in range(5)]
    assert log.last_id == ids[-1]
    assert [e.id for e in log.since(ids[1]) or []] == ids[2:]
    assert log.since(ids[-1]) == []
    assert log.since(ids[0]) is None  # ids[1] fell out of the buffer
    assert len(bus) == 1  # the log's tap, which never queues anything


def test_event_log_of_capacity_zero_never_resumes() -> None:
    """With no buffer, any gap is reported as lost."""
    bus = EventBus()
    log = EventLog(bus, capacity=0)
    first = bus.publish("station.connected", AT, {}).id
    bus.publish("station.connected", AT, {})
    assert log.since(first) is None


def test_sse_frame_is_one_event_in_wire_format_whatever_the_data() -> None:
    """id, event and one data line of JSON; UTC times with Z; values JSON cannot hold are sent as text."""

    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    event = Event("booking.created", AT, {"price": Decimal("1.50"), "what": Opaque()}, id=7)
    frame = sse_frame(event)
    lines = frame.decode().split("\n")
    assert lines[:2] == ["id: 7", "event: booking.created"] and frame.endswith(b"\n\n")
    body = json.loads(lines[2].removeprefix("data: "))
    assert body == {
        "id": 7,
        "kind": "booking.created",
        "at": "2026-11-23T00:00:00Z",
        "data": {"price": "1.50", "what": "opaque"},
    }
