"""What the runtime's background loops share: one task, woken by an event or a timeout, stopped by cancelling it.

``settled()`` lets tests and the API wait until everything reported so far is handled: a loop clears ``_idle``
when it is woken and sets it when a round leaves nothing pending.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

__all__ = ["WakeableLoop"]


class WakeableLoop:
    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _start_task(self, run: Coroutine[Any, Any, None], name: str) -> None:
        self._task = asyncio.create_task(run, name=name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def settled(self) -> None:
        """Wait until nothing is pending: everything reported so far handled and acted on."""
        await self._idle.wait()

    async def _sleep_until_woken(self, seconds: float) -> None:
        """Return when woken or after ``seconds``, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that lands as the event is set, and the
            # loop would then never stop (a shutdown hung at a test's teardown).
            async with asyncio.timeout(seconds):
                await self._wake.wait()
