"""A raw OCPP-J test client: sends exact frames, records what comes back, answers the CSMS's CALLs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Returns the CALLRESULT payload, a whole frame (list) to send instead (e.g. a CALLERROR), or None for silence.
Answerer = Callable[[str, dict[str, Any]], dict[str, Any] | list[Any] | None]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RawClient:
    """One charger connection. ``call`` waits for the reply with the same id; CSMS CALLs go to ``answer``."""

    def __init__(self, connection: ClientConnection, answer: Answerer | None = None) -> None:
        self.connection = connection
        self.answer = answer or (lambda action, payload: {"status": "Accepted"})
        self.received_calls: list[tuple[str, dict[str, Any]]] = []
        self._replies: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, url: str, subprotocol: str = "ocpp1.6", answer: Answerer | None = None, **kwargs: Any
    ) -> RawClient:
        connection = await connect(url, subprotocols=[subprotocol], open_timeout=5, **kwargs)  # type: ignore[list-item]
        return cls(connection, answer)

    async def _read(self) -> None:
        async for data in self.connection:
            frame = json.loads(data)
            if isinstance(frame, list) and frame and frame[0] == 2:
                action, payload = frame[2], frame[3]
                self.received_calls.append((action, payload))
                answer = self.answer(action, payload)
                if isinstance(answer, list):
                    await self.connection.send(json.dumps([answer[0], frame[1], *answer[1:]]))
                elif answer is not None:
                    await self.connection.send(json.dumps([3, frame[1], answer]))
            else:
                await self._replies.put(frame)

    async def send_raw(self, data: str | bytes) -> None:
        await self.connection.send(data)

    async def next_reply(self, timeout: float = 5) -> list[Any]:
        return await asyncio.wait_for(self._replies.get(), timeout)

    async def no_reply_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._replies.get(), seconds)
        except TimeoutError:
            return True
        return False

    async def call(self, action: str, payload: dict[str, Any], timeout: float = 5) -> list[Any]:
        """Send a CALL and return the whole reply frame (CALLRESULT or CALLERROR)."""
        message_id = f"m{next(self._ids)}"
        await self.connection.send(json.dumps([2, message_id, action, payload]))
        reply = await self.next_reply(timeout)
        assert reply[1] == message_id, f"reply {reply} does not answer {message_id}"
        return reply

    async def result(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL that must succeed and return its CALLRESULT payload."""
        reply = await self.call(action, payload)
        assert reply[0] == 3, f"{action} got {reply}"
        result: dict[str, Any] = reply[2]
        return result

    async def close(self) -> None:
        await self.connection.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await self._reader
