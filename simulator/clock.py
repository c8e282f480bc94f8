"""Simulated time: a clock that can run faster than real time, and OCPP timestamp formatting."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

__all__ = ["SimClock", "format_ts", "parse_ts"]


class SimClock:
    """Wall clock whose simulated time advances `speed` times faster than real time.

    Every duration in the simulator (heartbeat interval, meter interval, stay length) is simulated
    time; only network concerns (connect timeouts, reconnect back-off) use real time.
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._speed = speed
        self._start_sim = (start or datetime.now(UTC)).astimezone(UTC)
        self._start_real = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        """Current simulated time (timezone-aware UTC)."""
        elapsed = (time.monotonic() - self._start_real) * self._speed
        return self._start_sim + timedelta(seconds=elapsed)

    def real_seconds(self, sim_seconds: float) -> float:
        """How long `sim_seconds` of simulated time take in real time."""
        return max(0.0, sim_seconds) / self._speed

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of simulated time."""
        await asyncio.sleep(self.real_seconds(seconds))

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until the simulated time reaches `when` (returns at once if already past)."""
        await self.sleep((when - self.now()).total_seconds())


def format_ts(dt: datetime) -> str:
    """RFC 3339 UTC with millisecond precision and a `Z` suffix, as strict OCPP peers expect."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: str) -> datetime:
    """Parse an OCPP timestamp; naive values (seen from lax peers) are taken as UTC."""
    dt = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
