"""``GET /api/v1/events``: Server-Sent Events of status, session and booking changes, filtered by role.

A plain ``StreamingResponse`` writes the ``text/event-stream`` format (it is four kinds of line; a library would
not save code, and shutdown must be able to end every stream). Each event carries its bus id, so a client that
reconnects with ``Last-Event-ID`` (header, or ``last_event_id`` for clients that cannot set headers) gets what it
missed from a bounded buffer; when that is gone it gets a ``reset`` event and should reload state. An idle stream
gets a comment every ``live.heartbeat_seconds`` so proxies keep it open. A client too slow to keep up is cut off
(its stream ends) rather than buffered without bound; it resumes with its last id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse
from pydantic_core import to_json

from csms.api.auth import CurrentPrincipal
from csms.api.availability import live_services
from csms.api.context import ApiContext, api_context
from csms.errors import InvalidRequest
from csms.service.events import Event, Subscription
from csms.service.live import LiveServices
from csms.service.live_events import visible_to

__all__ = ["router", "sse_frame"]

router = APIRouter(tags=["events"])
Context = Annotated[ApiContext, Depends(api_context)]
RETRY_MS = 3000


def sse_frame(event: Event) -> bytes:
    """One event in the SSE wire format; a value JSON has no form for (from any publisher) is sent as text."""
    body = {"id": event.id, "kind": event.kind, "at": event.at, "data": event.data}
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.kind.encode(), to_json(body, fallback=str))


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an endless event stream"}},
)
async def stream_events(
    ctx: Context,
    principal: CurrentPrincipal,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    kinds: Annotated[str | None, Query(max_length=500, description="comma-separated kinds or prefixes")] = None,
) -> StreamingResponse:
    """Live events the caller may see: admin all, operators their sites', drivers their own account's."""
    live = live_services(ctx)
    resume = last_event_id if last_event_id is not None else _event_id(last_event_id_header)
    visible = visible_to(principal)
    wanted = _kinds(kinds)

    def accepts(event: Event) -> bool:
        return visible(event) and wanted(event.kind)

    # Subscribe before the response starts, so nothing published from here on is missed.
    subscription = live.streams.open(accepts)
    return StreamingResponse(
        _stream(live, subscription, accepts, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    live: LiveServices, subscription: Subscription, accepts: Callable[[Event], bool], resume: int | None
) -> AsyncIterator[bytes]:
    try:
        yield b"retry: %d\n: stream open\n\n" % RETRY_MS
        sent = 0
        if resume is not None:
            missed = live.log.since(resume)
            if missed is None:
                yield b'event: reset\ndata: {"reason": "events after your last id are no longer kept"}\n\n'
            else:
                for old in missed:
                    if accepts(old):
                        yield sse_frame(old)
                    sent = old.id
        while not live.streams.closing:
            event = await subscription.next(timeout=live.settings.heartbeat_seconds)
            if event is None:
                if subscription.overflowed or live.streams.closing:
                    break
                yield b": keepalive\n\n"
                continue
            if event.id > sent:
                yield sse_frame(event)
    finally:
        live.streams.release(subscription)


def _event_id(header: str | None) -> int | None:
    if header is None or header == "":
        return None
    try:
        value = int(header)
    except ValueError:
        raise InvalidRequest(f"Last-Event-ID must be an event id (a whole number), not {header!r}") from None
    if value < 0:
        raise InvalidRequest("Last-Event-ID must not be negative")
    return value


def _kinds(text: str | None) -> Callable[[str], bool]:
    if not text:
        return lambda kind: True
    wanted = tuple(part.strip() for part in text.split(",") if part.strip())
    return lambda kind: any(kind == w or kind.startswith(w.rstrip(".") + ".") for w in wanted)
