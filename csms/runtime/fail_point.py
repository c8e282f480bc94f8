"""A test hook for kill -9 campaigns: the server SIGKILLs itself at a chosen point of answering a message.

Off unless the environment variable ``CSMS_KILL_AT`` holds ``<point>:<n>`` when ``csms serve`` starts (it is read
once, then; unset, every session holds ``None`` and answering a CALL pays three ``is not None`` tests). With it,
the server kills itself the n-th time a transaction message (:data:`TRANSACTION_ACTIONS`) passes ``point``:

- ``after_receive``: the CALL was parsed, nothing of it written yet;
- ``after_commit``: its writes are committed (the handler awaited the group commit), the reply not yet sent;
- ``after_reply``: the reply was handed to the socket.

Random kill times hit the middle point only by luck; this makes every kill land where it is meant to, so the
campaign in ``benchmarks/resilience/kill_points.py`` can count 100 kills at each. Just before the kill one JSON
line naming the point, station, action and message id is written straight to stderr (``os.write``: no buffer
that SIGKILL could lose), so the campaign knows which message was caught.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from enum import StrEnum

import orjson

from csms.errors import ConfigError

__all__ = ["KILL_AT_VARIABLE", "TRANSACTION_ACTIONS", "FailPoint", "KillPoint", "fail_point_from_environment"]

KILL_AT_VARIABLE = "CSMS_KILL_AT"
# The messages a kill -9 campaign judges: transactions, their stops and the readings (1.6 and 2.0.1).
TRANSACTION_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent"})


class KillPoint(StrEnum):
    AFTER_RECEIVE = "after_receive"
    AFTER_COMMIT = "after_commit"
    AFTER_REPLY = "after_reply"


class FailPoint:
    """Kill the process the ``count``-th time a transaction message passes ``point``."""

    def __init__(self, point: KillPoint, count: int) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        self.point = point
        self.count = count
        self.seen = 0

    def passed(self, point: KillPoint, station_id: str, action: str, message_id: str) -> None:
        if point is not self.point or action not in TRANSACTION_ACTIONS:
            return
        self.seen += 1
        if self.seen < self.count:
            return
        marker = {"fail_point": point.value, "count": self.count, "station_id": station_id}
        marker |= {"action": action, "message_id": message_id}
        os.write(2, orjson.dumps(marker) + b"\n")
        os.kill(os.getpid(), signal.SIGKILL)


def fail_point_from_environment(environ: Mapping[str, str]) -> FailPoint | None:
    """The fail point ``CSMS_KILL_AT`` names, or None when it is unset or empty.

    Raises:
        ConfigError: the value is not ``<point>:<n>`` with a known point and n >= 1.
    """
    value = environ.get(KILL_AT_VARIABLE, "").strip()
    if not value:
        return None
    point, _, count = value.partition(":")
    try:
        return FailPoint(KillPoint(point), int(count))
    except ValueError:
        points = ", ".join(p.value for p in KillPoint)
        raise ConfigError(f"{KILL_AT_VARIABLE}={value!r}: expected <point>:<n> with point one of {points}") from None
