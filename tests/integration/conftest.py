"""Fixtures shared by the money tests (tariffs, overstay, session rules): a manual clock at ``T0`` and a real
CSMS driven by it, with session timers checked every 50 ms of real time. A module that needs other settings
defines its own ``system``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.money_helpers import T0, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def system(tmp_path: Path, clock: Clock) -> AsyncIterator[CentralSystem]:
    central = CentralSystem(make_settings(tmp_path, tariffs={"tick_seconds": 0.05}), clock=clock)
    await central.start()
    try:
        yield central
    finally:
        await central.stop()
