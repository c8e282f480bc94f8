"""Booking timers: ReserveNow at lead time, no-shows at expiry, retries, and the charger events bookings follow.

The loop sleeps until the service's next due instant (at most ``tick_seconds``) or until it is woken (a new booking,
a charger event). Everything it does is re-derived from the service's state at each wake-up, so after a restart it
simply catches up: a reservation due while the process was down is sent, a booking that expired meanwhile is
expired. Time comes from the injected clock; tests that move the clock call :meth:`BookingTimers.poke`.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from csms.config import BookingSettings
from csms.runtime.session import Clock
from csms.service.bookings import BookingService

__all__ = ["BookingTimers"]

log = structlog.get_logger(__name__)


class BookingTimers:
    def __init__(self, service: BookingService, settings: BookingSettings, clock: Clock) -> None:
        self._service = service
        self._settings = settings
        self._clock = clock
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Look at the bookings again now (something changed, or the clock moved)."""
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="booking-timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def settled(self) -> None:
        """Wait until nothing is pending: every queued event and due timer handled (tests, the API)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._service.run_due(self._clock())
            except Exception:
                # A bug or a database hiccup in one round must not stop every booking's timers.
                log.exception("booking timers failed")
            if self._wake.is_set() or self._service.has_notes():
                continue
            self._idle.set()
            with contextlib.suppress(TimeoutError):
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that lands as the event is set, and
                # the loop would then never stop (a shutdown hung at a test's teardown).
                async with asyncio.timeout(self._sleep()):
                    await self._wake.wait()

    def _sleep(self) -> float:
        due = self._service.next_due()
        if due is None:
            return self._settings.tick_seconds
        seconds = (due - self._clock()).total_seconds()
        return min(max(seconds, 0.05), self._settings.tick_seconds)
