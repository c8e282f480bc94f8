"""RFC 9457 problem responses: every CsmsError reaching the API becomes ``application/problem+json``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from csms.errors import (
    CommandNotSupported,
    Conflict,
    CsmsError,
    Forbidden,
    InvalidRequest,
    NotFound,
    RuleViolation,
    StationBadAnswer,
    StationCallError,
    StationOffline,
    StationTimeout,
    StorageError,
    Unauthorized,
)

__all__ = ["install_problem_handlers", "problem"]

PROBLEM_JSON = "application/problem+json"

_STATUS: list[tuple[type[CsmsError], int, str]] = [
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (RuleViolation, 422, "rule-violation"),
    (InvalidRequest, 422, "invalid-request"),
    (CommandNotSupported, 422, "command-not-supported"),
    (StationOffline, 409, "station-offline"),
    (StationTimeout, 504, "station-timeout"),
    (StationCallError, 502, "station-call-error"),
    (StationBadAnswer, 502, "station-bad-answer"),
    (StorageError, 503, "storage-unavailable"),
]


def problem(status: int, kind: str, title: str, detail: str, **extra: object) -> JSONResponse:
    body = {"type": f"https://csms.dev/problems/{kind}", "title": title, "status": status, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


async def _csms_error(request: Request, exc: Exception) -> JSONResponse:
    for error_type, status, kind in _STATUS:
        if isinstance(exc, error_type):
            extra: dict[str, object] = {}
            if isinstance(exc, StationCallError):
                extra = {"ocpp_error_code": exc.code, "ocpp_error_description": exc.description}
            elif isinstance(exc, RuleViolation):
                extra = {"rule": exc.rule, "limit": exc.limit}
            response = problem(status, kind, type(exc).__name__, str(exc), **extra)
            if isinstance(exc, Unauthorized):
                response.headers["WWW-Authenticate"] = 'Bearer realm="csms"'
            return response
    return problem(500, "internal", "CsmsError", str(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]} for error in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, "validation", "Request validation failed", detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, "http", str(exc.detail), str(exc.detail))


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CsmsError, _csms_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
