"""Small helpers shared by the benchmark servers, the load generator and the orchestrator."""

from __future__ import annotations

import http
import resource
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

# Server preference order, like research §2.
SUBPROTOCOLS: list[Subprotocol] = [Subprotocol("ocpp2.0.1"), Subprotocol("ocpp1.6")]

# Same websocket keepalive for every benchmark server (research §2 uses 60/60).
PING_INTERVAL = 60.0
PING_TIMEOUT = 60.0


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or (target != resource.RLIM_INFINITY and soft >= target):
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def utc_now_z() -> str:
    """RFC 3339 UTC timestamp with a 'Z' suffix and millisecond precision."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def select_subprotocol(conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Pick the first server-preferred subprotocol the client offered (None => close after 101)."""
    return next((p for p in SUBPROTOCOLS if p in offered), None)


def process_request(conn: ServerConnection, request: Request) -> Response | None:
    """Take the charge point identity from the last path segment; 404 if there is none."""
    ident = unquote(urlsplit(request.path).path.rstrip("/").rsplit("/", 1)[-1])
    if not ident:
        return conn.respond(http.HTTPStatus.NOT_FOUND, "unknown charging station\n")
    conn.cs_id = ident  # type: ignore[attr-defined]
    return None
