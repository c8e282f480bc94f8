"""The session-rules timer loop: stores what chargers reported about sessions and acts on due timers.

It wakes when a session starts, ends or changes charging state, and at least every ``tariffs.tick_seconds``
(real seconds) to check timers against the injected clock, so a fast simulated clock only needs a short tick.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from csms.config import TariffSettings
from csms.runtime.session import Clock
from csms.service.session_rules import SessionRulesService

__all__ = ["SessionRulesLoop"]

log = structlog.get_logger(__name__)


class SessionRulesLoop:
    def __init__(self, service: SessionRulesService, settings: TariffSettings, clock: Clock) -> None:
        self._service = service
        self._settings = settings
        self._clock = clock
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        service.bind(self.wake)

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        self.wake()  # sessions that ended while the process was down are costed at once
        self._task = asyncio.create_task(self._run(), name="session-rules")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def settled(self) -> None:
        """Wait until everything reported so far is stored and acted on (tests, the API's cost reads)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that lands as the event is set, and
                # the loop would then never stop (a shutdown hung at a test's teardown).
                async with asyncio.timeout(self._settings.tick_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._service.process(self._clock())
                await self._service.tick(self._clock())
            except Exception:
                # A database hiccup or a bug in one session must not end the timers of every session.
                log.exception("session rules round failed")
            if not self._wake.is_set():
                self._idle.set()
