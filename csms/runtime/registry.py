"""Live sessions by station identity. A new connection with the same identity replaces the old one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from csms.runtime.session import StationSession

__all__ = ["SessionRegistry"]

log = structlog.get_logger(__name__)

# Close code for a connection superseded by a newer one of the same station (1000 would hide the reason;
# 4000-4999 are for applications).
CLOSE_REPLACED = 4000


class SessionRegistry:
    def __init__(self) -> None:
        self._sessions: dict[str, StationSession] = {}
        # Closes of replaced sessions still running (the reference keeps each task alive until it ends).
        self._closing: set[asyncio.Task[None]] = set()
        self._listeners: list[Callable[[str, bool], None]] = []

    def listen(self, listener: Callable[[str, bool], None]) -> None:
        """Call ``listener(station_id, connected)`` when a station connects and when its connection ends."""
        self._listeners.append(listener)

    def _tell(self, station_id: str, connected: bool) -> None:
        for listener in self._listeners:
            listener(station_id, connected)

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, station_id: str) -> StationSession | None:
        return self._sessions.get(station_id)

    def ids(self) -> list[str]:
        return sorted(self._sessions)

    async def attach(self, session: StationSession) -> None:
        old = self._sessions.get(session.station_id)
        self._sessions[session.station_id] = session
        self._tell(session.station_id, True)
        if old is not None:
            log.warning(
                "connection replaced by a new one",
                station_id=session.station_id,
                old_session=old.number,
                new_session=session.number,
            )
            # Closing waits up to websockets' close timeout (10 s) for the old peer's close frame, which a half-open
            # peer (the usual reason a charger reconnects) never sends: the new session must not wait for that.
            closing = asyncio.create_task(old.close(CLOSE_REPLACED, "replaced by a new connection"))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    def detach(self, session: StationSession) -> None:
        # Only the current session may remove itself: a replaced one must not unregister its successor.
        if self._sessions.get(session.station_id) is session:
            del self._sessions[session.station_id]
            self._tell(session.station_id, False)
