"""When smart charging re-plans: on events (debounced) and on a periodic tick, one plan at a time."""

from __future__ import annotations

import asyncio

import structlog

from csms.config import SmartChargingSettings
from csms.runtime.loops import WakeableLoop
from csms.runtime.session import Clock
from csms.service.smart_charging import SmartChargingService

__all__ = ["SmartChargingLoop"]

log = structlog.get_logger(__name__)

# Stations configured at once after boots (capability query + TxDefaultProfile); a reconnect storm must not
# turn into thousands of simultaneous calls.
_CONFIGURE_CONCURRENCY = 50


class SmartChargingLoop(WakeableLoop):
    """Runs ``SmartChargingService.replan`` after events settle and at least every ``tick_seconds``.

    Events (a session starts or stops, a car draws differently, a limit changes) only set a flag, so a burst of
    them costs one plan. Plans never overlap: a request that arrives while one is running is served by the next.
    """

    def __init__(self, service: SmartChargingService, settings: SmartChargingSettings, clock: Clock) -> None:
        super().__init__()
        self._service = service
        self._settings = settings
        self._clock = clock
        self._to_configure: set[str] = set()
        service.bind(self.request_replan, self.request_configure)

    def request_replan(self) -> None:
        self._idle.clear()
        self._wake.set()

    def request_configure(self, station_id: str) -> None:
        self._to_configure.add(station_id)
        self.request_replan()

    def start(self) -> None:
        if self._settings.enabled:
            self._start_task(self._run(), "smart-charging")

    async def _run(self) -> None:
        while True:
            await self._sleep_until_woken(self._settings.tick_seconds)
            if self._settings.debounce_seconds:
                await asyncio.sleep(self._settings.debounce_seconds)
            self._wake.clear()
            try:
                await self._configure_stations()
                await self._service.replan(self._clock())
            except Exception:
                # One bad plan (a bug, a database hiccup) must not end smart charging for the whole process.
                log.exception("smart charging re-plan failed")
            if not self._wake.is_set():
                self._idle.set()

    async def _configure_stations(self) -> None:
        stations, self._to_configure = self._to_configure, set()
        if not stations:
            return
        limit = asyncio.Semaphore(_CONFIGURE_CONCURRENCY)

        async def configure(station_id: str) -> None:
            async with limit:
                await self._service.configure_station(station_id, self._clock())

        await asyncio.gather(*(configure(station_id) for station_id in sorted(stations)))
