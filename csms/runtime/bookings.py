"""Booking timers: ReserveNow at lead time, no-shows at expiry, retries, and the charger events bookings follow.

The loop sleeps until the service's next due instant (at most ``tick_seconds``) or until it is woken (a new booking,
a charger event). Everything it does is re-derived from the service's state at each wake-up, so after a restart it
simply catches up: a reservation due while the process was down is sent, a booking that expired meanwhile is
expired. Time comes from the injected clock; tests that move the clock call :meth:`BookingTimers.poke`.
"""

from __future__ import annotations

import structlog

from csms.config import BookingSettings
from csms.runtime.loops import WakeableLoop
from csms.runtime.session import Clock
from csms.service.bookings import BookingService

__all__ = ["BookingTimers"]

log = structlog.get_logger(__name__)


class BookingTimers(WakeableLoop):
    def __init__(self, service: BookingService, settings: BookingSettings, clock: Clock) -> None:
        super().__init__()
        self._service = service
        self._settings = settings
        self._clock = clock

    def poke(self) -> None:
        """Look at the bookings again now (something changed, or the clock moved)."""
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        self._start_task(self._run(), "booking-timers")

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
            await self._sleep_until_woken(self._sleep())

    def _sleep(self) -> float:
        due = self._service.next_due()
        if due is None:
            return self._settings.tick_seconds
        seconds = (due - self._clock()).total_seconds()
        return min(max(seconds, 0.05), self._settings.tick_seconds)
