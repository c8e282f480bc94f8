"""What the simulator logs about the `ocpp` library's complaints."""

from __future__ import annotations

import logging

import pytest

import simulator.ocpp_compat  # noqa: F401  (installs the filter on the "ocpp" logger)


@pytest.mark.allow_error_logs  # the second line is an ERROR on purpose
def test_a_late_answer_to_an_abandoned_call_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The library's ERROR for an answer nobody waits for any more is a WARNING; other errors stay errors."""
    logging.getLogger("ocpp").error("Ignoring response with unknown unique id: %s", "<CallResult ...>")
    logging.getLogger("ocpp").error("something else")
    levels = [(r.levelname, r.getMessage()[:20]) for r in caplog.records if r.name == "ocpp"]
    assert levels == [("WARNING", "Ignoring response wi"), ("ERROR", "something else")]
