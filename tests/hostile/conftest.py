"""Fixtures the hostile tests share."""

from __future__ import annotations

import pytest

from tests.hostile.attack import SUBPROTOCOLS


@pytest.fixture(params=SUBPROTOCOLS)
def subprotocol(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs once per OCPP version."""
    result: str = request.param
    return result
