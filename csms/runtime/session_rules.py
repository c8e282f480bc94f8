"""The session-rules timer loop: stores what chargers reported about sessions and acts on due timers.

It wakes when a session starts, ends or changes charging state, and at least every ``tariffs.tick_seconds``
(real seconds) to check timers against the injected clock, so a fast simulated clock only needs a short tick.
"""

from __future__ import annotations

import structlog

from csms.config import TariffSettings
from csms.runtime.loops import WakeableLoop
from csms.runtime.session import Clock
from csms.service.session_rules import SessionRulesService

__all__ = ["SessionRulesLoop"]

log = structlog.get_logger(__name__)


class SessionRulesLoop(WakeableLoop):
    def __init__(self, service: SessionRulesService, settings: TariffSettings, clock: Clock) -> None:
        super().__init__()
        self._service = service
        self._settings = settings
        self._clock = clock
        service.bind(self.wake)

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        self.wake()  # sessions that ended while the process was down are costed at once
        self._start_task(self._run(), "session-rules")

    async def _run(self) -> None:
        while True:
            await self._sleep_until_woken(self._settings.tick_seconds)
            self._wake.clear()
            try:
                await self._service.process(self._clock)
                await self._service.tick(self._clock())
            except Exception:
                # A database hiccup or a bug in one session must not end the timers of every session.
                log.exception("session rules round failed")
            if not self._wake.is_set():
                self._idle.set()
