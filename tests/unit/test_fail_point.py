"""The kill -9 test hook's switch: off unless CSMS_KILL_AT names a point and a count, refused when malformed."""

from __future__ import annotations

import pytest

from csms.errors import ConfigError
from csms.runtime.fail_point import FailPoint, KillPoint, fail_point_from_environment


def test_the_hook_is_off_unless_the_variable_is_set() -> None:
    assert fail_point_from_environment({}) is None
    assert fail_point_from_environment({"CSMS_KILL_AT": " "}) is None


def test_the_variable_names_the_point_and_the_count() -> None:
    fail_point = fail_point_from_environment({"CSMS_KILL_AT": "after_commit:7"})
    assert isinstance(fail_point, FailPoint)
    assert (fail_point.point, fail_point.count) == (KillPoint.AFTER_COMMIT, 7)


@pytest.mark.parametrize("value", ["after_commit", "before_commit:3", "after_reply:0", "after_reply:x"])
def test_a_malformed_value_stops_the_start(value: str) -> None:
    with pytest.raises(ConfigError, match="CSMS_KILL_AT"):
        fail_point_from_environment({"CSMS_KILL_AT": value})


def test_other_points_and_other_messages_are_not_counted() -> None:
    """Only transaction messages at the armed point count (the kill itself is shown by test_durability.py)."""
    fail_point = FailPoint(KillPoint.AFTER_REPLY, 2)
    fail_point.passed(KillPoint.AFTER_RECEIVE, "S1", "StartTransaction", "1")
    fail_point.passed(KillPoint.AFTER_COMMIT, "S1", "StartTransaction", "1")
    fail_point.passed(KillPoint.AFTER_REPLY, "S1", "Heartbeat", "2")
    fail_point.passed(KillPoint.AFTER_REPLY, "S1", "BootNotification", "3")
    assert fail_point.seen == 0
    fail_point.passed(KillPoint.AFTER_REPLY, "S1", "MeterValues", "4")
    assert fail_point.seen == 1
