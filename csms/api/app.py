"""The HTTP API application: explicit routers, API-key auth (csms.api.auth), problem responses, health and metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import Response

from csms.api import (
    accounts,
    analytics,
    availability,
    bookings,
    commands,
    connectors,
    events,
    grid,
    resources,
    security,
    smart_charging,
    tariffs,
)
from csms.api.auth import current_principal
from csms.api.context import ApiContext, api_context
from csms.api.problems import install_problem_handlers

__all__ = ["create_app"]


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

    @app.get("/healthz", tags=["health"])
    async def healthz(ctx: Annotated[ApiContext, Depends(api_context)]) -> dict[str, Any]:
        return {"status": "ok", "stations_connected": len(ctx.registry)}

    @app.get("/metrics", tags=["health"])
    async def metrics(ctx: Annotated[ApiContext, Depends(api_context)]) -> Response:
        return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")

    v1 = APIRouter(prefix="/api/v1", dependencies=[Depends(current_principal)])
    v1.include_router(accounts.router)
    v1.include_router(resources.router)
    v1.include_router(commands.router)
    v1.include_router(grid.router)
    v1.include_router(smart_charging.router)
    v1.include_router(connectors.router)
    v1.include_router(availability.router)
    v1.include_router(events.router)
    v1.include_router(analytics.router)
    v1.include_router(bookings.router)
    v1.include_router(security.router)
    v1.include_router(tariffs.router)
    app.include_router(v1)
    return app
