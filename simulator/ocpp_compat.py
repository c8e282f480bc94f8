"""Typed shims over the untyped `ocpp` library (its decorators and error classes)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError, ValidationError
from ocpp.routing import on as _on

__all__ = ["CALL_ERRORS", "CALL_FAILURES", "SEND_FAILURES", "on"]

F = TypeVar("F", bound=Callable[..., Any])

#: What `ChargePoint.call(..., suppress=False)` raises besides timeouts and closed connections:
#: a CALLERROR from the peer, an unknown 2.0.1 error code, or our own payload failing the schema.
CALL_ERRORS: tuple[type[Exception], ...] = (OCPPError, UnknownCallErrorCodeError, ValidationError)
#: ... plus no answer in time.
CALL_FAILURES: tuple[type[Exception], ...] = (TimeoutError, *CALL_ERRORS)
#: ... plus a payload that could not be built (e.g. a 1.6 transaction id never learnt).
SEND_FAILURES: tuple[type[Exception], ...] = (LookupError, ValueError, TypeError, *CALL_ERRORS)


def on(action: str) -> Callable[[F], F]:
    """`ocpp.routing.on` with a type mypy can check (the handler keeps its signature)."""
    return cast(Callable[[F], F], _on(action))


class _LateAnswerIsNotAnError(logging.Filter):
    """`ocpp` logs an answer to a call we already gave up on (timed out, or cancelled at shutdown) as an ERROR.

    For a station that is ordinary life on a slow or busy link, not a fault: log it as a warning.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.getMessage().startswith("Ignoring response with unknown"):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


logging.getLogger("ocpp").addFilter(_LateAnswerIsNotAnError())
