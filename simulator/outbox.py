"""Ordered outgoing message queue that survives disconnections for transaction messages.

Every CALL a station initiates after boot goes through one FIFO, so the CSMS sees messages in the
order they happened. Transaction-related items are `persistent`: kept while offline and replayed
in order after reconnect with their original timestamps. Other items are dropped while offline
(the station re-reports its current status on reconnect instead).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Outbox", "OutboxItem"]


@dataclass
class OutboxItem:
    """One CALL to send. `build` runs at send time, so ids learnt meanwhile can be filled in."""

    action: str
    build: Callable[[], Any]
    persistent: bool = False
    on_result: Callable[[Any], None] | None = None
    offline: bool = False
    attempts: int = 0


class Outbox:
    def __init__(self) -> None:
        self._items: deque[OutboxItem] = deque()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def persistent_count(self) -> int:
        return sum(1 for item in self._items if item.persistent)

    def items(self) -> list[OutboxItem]:
        return list(self._items)

    def put(self, item: OutboxItem) -> None:
        self._items.append(item)
        self._changed.set()

    def head(self) -> OutboxItem | None:
        return self._items[0] if self._items else None

    def pop_head(self) -> None:
        if self._items:
            self._items.popleft()
            self._changed.set()

    def drop_volatile(self) -> int:
        """Forget non-transaction items (called when the connection is lost)."""
        before = len(self._items)
        self._items = deque(item for item in self._items if item.persistent)
        self._changed.set()
        return before - len(self._items)

    async def next_item(self) -> OutboxItem:
        while not self._items:
            self._changed.clear()
            await self._changed.wait()
        return self._items[0]

    async def wait_empty(self) -> None:
        while self._items:
            self._changed.clear()
            await self._changed.wait()
