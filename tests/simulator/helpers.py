"""Small async helpers for simulator tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["eventually"]


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds, failing after `timeout` real seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
