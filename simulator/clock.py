"""Simulated time: a clock that can run faster than real time, and OCPP timestamp formatting."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["SimClock", "format_ts", "parse_ts", "whole_second_up"]


class SimClock:
    """Wall clock whose simulated time advances `speed` times faster than real time.

    Every duration in the simulator (heartbeat interval, meter interval, stay length) is simulated
    time; only network concerns (connect timeouts, reconnect back-off) use real time.

    With `stop_while_starved`, simulated time stands still while the thread that made the clock waits
    for a CPU (Linux: the run-queue delay in /proc/thread-self/schedstat) and while the process collects
    garbage. A fast-forwarded test that shares its event loop with the CSMS then sees the same simulated
    latencies on a loaded machine as on an idle one; the run just takes longer. A full collection stops
    every station and the CSMS at once for up to a few hundred milliseconds, which at 600x would be
    minutes in which no simulated station acts on anything (a station told to lower its limit lowered
    it minutes late), an artefact of sharing one process that no real fleet has. Where the kernel does
    not say, only garbage collection is taken out.
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None, *, stop_while_starved: bool = False) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._speed = speed
        self._start_sim = (start or datetime.now(UTC)).astimezone(UTC)
        self._start_real = time.monotonic()
        self._starved = _RunQueueDelay() if stop_while_starved else None
        self._collecting_from = _GC_PAUSES.seconds() if stop_while_starved else None
        self._last = self._start_sim

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def stops_while_starved(self) -> bool:
        """Whether simulated time really stands still while the process waits for a CPU."""
        return self._starved is not None and self._starved.available

    def now(self) -> datetime:
        """Current simulated time (timezone-aware UTC); never goes back."""
        elapsed = time.monotonic() - self._start_real
        if self._starved is not None:
            elapsed -= self._starved.seconds()
        if self._collecting_from is not None:
            elapsed -= _GC_PAUSES.seconds() - self._collecting_from
        now = self._start_sim + timedelta(seconds=elapsed * self._speed)
        if now < self._last:
            return self._last
        self._last = now
        return now

    def advance_to(self, when: datetime) -> None:
        """Jump forward to `when` (nothing happens in between: use it to skip idle time); never goes back."""
        ahead = (when - self.now()).total_seconds()
        if ahead > 0:
            self._start_sim += timedelta(seconds=ahead)

    def real_seconds(self, sim_seconds: float) -> float:
        """How long `sim_seconds` of simulated time take in real time."""
        return max(0.0, sim_seconds) / self._speed

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of simulated time."""
        await asyncio.sleep(self.real_seconds(seconds))

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until the simulated time reaches `when` (returns at once if already past)."""
        while (left := (when - self.now()).total_seconds()) > 0:
            # Simulated time may run slower than planned (see `stop_while_starved`): look again on waking.
            await asyncio.sleep(max(self.real_seconds(left), _MIN_SLEEP_S))


# sleep_until never sleeps less than this (real seconds), so a last sliver of simulated time costs no busy loop.
_MIN_SLEEP_S = 0.001


class _RunQueueDelay:
    """Seconds the calling thread has spent runnable but waiting for a CPU since this was made (Linux)."""

    _PATH = "/proc/thread-self/schedstat"
    _REREAD_S = 0.002  # now() is called very often; the figure moves in scheduler ticks anyway

    def __init__(self) -> None:
        self._fd: int | None = None
        try:
            self._fd = os.open(self._PATH, os.O_RDONLY)
            self._origin = self._read()
        except (OSError, ValueError, IndexError):
            self._fd = None
            self._origin = 0
        self._value = 0.0
        self._read_at = -1.0

    @property
    def available(self) -> bool:
        return self._fd is not None

    def seconds(self) -> float:
        if self._fd is None:
            return 0.0
        now = time.monotonic()
        if now - self._read_at >= self._REREAD_S:
            self._read_at = now
            try:
                self._value = (self._read() - self._origin) / 1e9
            except (OSError, ValueError, IndexError):
                pass
        return self._value

    def _read(self) -> int:
        assert self._fd is not None
        # "<ns on CPU> <ns waiting on a run queue> <timeslices>"
        return int(os.pread(self._fd, 128, 0).split()[1])

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


class _GcPauses:
    """Seconds the process has spent in the cyclic garbage collector since the first clock asked (every thread
    waits for a collection: it holds the GIL). One callback for the process, however many clocks. A collection
    the kernel also kept waiting for a CPU is taken out twice: simulated time then runs a little slow, never
    back."""

    def __init__(self) -> None:
        self._total = 0.0
        self._started: float | None = None
        self._registered = False

    def seconds(self) -> float:
        if not self._registered:
            gc.callbacks.append(self._on_collection)
            self._registered = True
        return self._total

    def _on_collection(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.monotonic()
        elif self._started is not None:
            self._total += time.monotonic() - self._started
            self._started = None


_GC_PAUSES = _GcPauses()


def whole_second_up(dt: datetime) -> datetime:
    """``dt`` rounded up to a whole second (unchanged when it is one)."""
    whole = dt.replace(microsecond=0)
    return whole if whole == dt else whole + timedelta(seconds=1)


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
