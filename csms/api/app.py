"""The HTTP API application: explicit routers, bearer-token auth, problem responses, health and metrics."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import Response

from csms.api import commands, grid, resources, smart_charging
from csms.api.context import ApiContext, api_context
from csms.api.problems import install_problem_handlers
from csms.errors import CsmsError

__all__ = ["create_app"]


class Unauthorized(CsmsError):
    pass


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    context: ApiContext = request.app.state.context
    expected = context.settings.admin_token
    if expected is None:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise Unauthorized("missing or wrong bearer token")


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(
        title="CSMS API",
        version="1",
        summary="OCPP 1.6J / 2.0.1 central system",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.context = context
    install_problem_handlers(app)

    from csms.api.problems import problem

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Exception) -> Response:
        response = problem(401, "unauthorized", "Unauthorized", str(exc))
        response.headers["WWW-Authenticate"] = 'Bearer realm="csms"'
        return response

    @app.get("/healthz", tags=["health"])
    async def healthz(ctx: Annotated[ApiContext, Depends(api_context)]) -> dict[str, Any]:
        return {"status": "ok", "stations_connected": len(ctx.registry)}

    @app.get("/metrics", tags=["health"])
    async def metrics(ctx: Annotated[ApiContext, Depends(api_context)]) -> Response:
        return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")

    v1 = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)])
    v1.include_router(resources.router)
    v1.include_router(commands.router)
    v1.include_router(grid.router)
    v1.include_router(smart_charging.router)
    app.include_router(v1)
    return app
