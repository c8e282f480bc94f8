"""Simulated time: speed, skipping idle time, and a clock that stops while the process waits for a CPU."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from simulator.clock import SimClock

T0 = datetime(2026, 6, 3, 5, 0, tzinfo=UTC)


def test_clock_runs_at_its_speed() -> None:
    """One real second is `speed` simulated seconds."""
    clock = SimClock(600, start=T0)
    time.sleep(0.05)
    assert timedelta(seconds=25) <= clock.now() - T0 <= timedelta(seconds=60)


def test_advance_to_skips_ahead_but_never_back() -> None:
    """Jumping forward moves simulated time there; a jump into the past is ignored."""
    clock = SimClock(1, start=T0)
    clock.advance_to(T0 + timedelta(hours=1))
    assert timedelta(hours=1) <= clock.now() - T0 < timedelta(hours=1, seconds=5)
    clock.advance_to(T0)
    assert clock.now() - T0 >= timedelta(hours=1)


async def test_sleep_until_returns_once_the_time_has_come() -> None:
    """sleep_until returns when simulated time has reached the target, not before."""
    clock = SimClock(1000, start=T0, stop_while_starved=True)
    target = T0 + timedelta(seconds=30)
    await asyncio.wait_for(clock.sleep_until(target), 5)
    assert clock.now() >= target


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the run-queue delay is read from /proc")
def test_starvation_aware_clock_keeps_pace_when_the_cpu_is_free_and_never_goes_back() -> None:
    """On Linux the clock knows when the process waits for a CPU; idle, it runs at its speed; it is monotonic."""
    clock = SimClock(100, start=T0, stop_while_starved=True)
    assert clock.stops_while_starved
    readings = [clock.now() for _ in range(2000)]
    assert readings == sorted(readings)
    time.sleep(0.1)  # sleeping is not waiting for a CPU: simulated time goes on
    assert clock.now() - T0 >= timedelta(seconds=5)


def test_starvation_aware_clock_stands_still_while_the_process_collects_garbage() -> None:
    """A full collection stops the stations and the CSMS sharing the process alike: simulated time waits too,
    while a plain clock runs on through it."""
    plain = SimClock(1000, start=T0)
    aware = SimClock(1000, start=T0, stop_while_starved=True)
    garbage: list[list[object]] = []
    for _ in range(300_000):
        cycle: list[object] = []
        cycle.append(cycle)
        garbage.append(cycle)
    del garbage, cycle
    plain_before, aware_before, began = plain.now(), aware.now(), time.monotonic()
    gc.collect()
    collecting = time.monotonic() - began
    plain_advance = (plain.now() - plain_before).total_seconds()
    aware_advance = (aware.now() - aware_before).total_seconds()
    assert collecting > 0.02  # 300,000 cycles: tens of milliseconds even on a fast machine
    assert plain_advance >= 1000 * collecting
    assert aware_advance < 1000 * collecting / 2, (collecting, aware_advance)
