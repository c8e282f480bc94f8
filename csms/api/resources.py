"""Read and manage stored resources: stations, transactions, id tokens, reservations."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path as PathParam, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from csms.api.context import ApiContext, api_context
from csms.domain.stations import RegistrationStatus
from csms.domain.tokens import AuthorizationStatus, IdTokenRecord
from csms.errors import NotFound

__all__ = ["router"]

router = APIRouter()

# The database holds signed 64-bit integers: a larger offset or id is a 422, not an OverflowError in the driver
# (a 500; found by schemathesis, tests/hostile/test_hostile_api_fuzz.py).
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=_INT64_MAX)]
RowId = Annotated[int, PathParam(ge=_INT64_MIN, le=_INT64_MAX)]
Context = Annotated[ApiContext, Depends(api_context)]


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


def _page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    return {"items": [_plain(item) for item in items], "limit": limit, "offset": offset}


@router.get("/stations", tags=["stations"])
async def list_stations(ctx: Context, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    stations = await ctx.storage.list_stations(limit, offset)
    page = _page(stations, limit, offset)
    for item in page["items"]:
        item["connected"] = ctx.registry.get(item["id"]) is not None
    return page


@router.get("/stations/{station_id}", tags=["stations"])
async def get_station(station_id: str, ctx: Context) -> dict[str, Any]:
    station = await ctx.storage.get_station(station_id)
    if station is None:
        raise NotFound("station", station_id)
    session = ctx.registry.get(station_id)
    body: dict[str, Any] = _plain(station)
    body["connected"] = session is not None
    body["connected_protocol"] = session.adapter.version.subprotocol if session else None
    body["connectors"] = [_plain(c) for c in await ctx.storage.list_connectors(station_id)]
    return body


class StationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    registration: RegistrationStatus


@router.patch("/stations/{station_id}", tags=["stations"])
async def update_station(station_id: str, update: StationUpdate, ctx: Context) -> dict[str, Any]:
    """Accept (or reject) a station; it takes effect at its next BootNotification."""
    if await ctx.storage.get_station(station_id) is None:
        raise NotFound("station", station_id)
    await ctx.chargers.set_registration(station_id, update.registration)
    return await get_station(station_id, ctx)


@router.get("/stations/{station_id}/events", tags=["stations"])
async def list_station_events(
    station_id: str, ctx: Context, action: str | None = None, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    return _page(await ctx.storage.list_events(station_id, action, limit, offset), limit, offset)


@router.get("/stations/{station_id}/variables", tags=["stations"])
async def list_station_variables(station_id: str, ctx: Context) -> dict[str, Any]:
    rows = await ctx.storage.list_variables(station_id)
    return {"items": rows}


@router.get("/transactions", tags=["transactions"])
async def list_transactions(
    ctx: Context,
    station_id: str | None = None,
    active: bool | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    return _page(await ctx.storage.list_transactions(limit, offset, station_id, active), limit, offset)


@router.get("/transactions/{transaction_id}", tags=["transactions"])
async def get_transaction(transaction_id: RowId, ctx: Context) -> dict[str, Any]:
    transaction = await ctx.storage.get_transaction(transaction_id)
    if transaction is None:
        raise NotFound("transaction", transaction_id)
    body: dict[str, Any] = _plain(transaction)
    body["energy_wh"] = transaction.energy_wh
    return body


@router.get("/transactions/{transaction_id}/meter-values", tags=["transactions"])
async def list_meter_values(
    transaction_id: RowId, ctx: Context, limit: Limit = 1000, offset: Offset = 0
) -> dict[str, Any]:
    return _page(await ctx.storage.list_meter_values(transaction_id, limit, offset), limit, offset)


class IdTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: AuthorizationStatus = AuthorizationStatus.ACCEPTED
    token_type: str = Field(default="ISO14443", max_length=20)
    expiry: AwareDatetime | None = None
    parent_id: str | None = Field(default=None, max_length=36)
    group_id: str | None = Field(default=None, max_length=36)
    owner: str | None = Field(default=None, max_length=100)


TokenPath = Annotated[str, Field(min_length=1, max_length=36)]


@router.get("/id-tokens", tags=["id-tokens"])
async def list_id_tokens(ctx: Context, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    return _page(await ctx.storage.list_tokens(limit, offset), limit, offset)


@router.get("/id-tokens/{token}", tags=["id-tokens"])
async def get_id_token(token: TokenPath, ctx: Context) -> dict[str, Any]:
    record = await ctx.storage.get_token(token)
    if record is None:
        raise NotFound("id token", token)
    plain: dict[str, Any] = _plain(record)
    return plain


@router.put("/id-tokens/{token}", tags=["id-tokens"])
async def put_id_token(token: TokenPath, body: IdTokenBody, ctx: Context) -> dict[str, Any]:
    record = IdTokenRecord(token=token, **body.model_dump())
    await ctx.chargers.put_token(record, ctx.clock())
    plain: dict[str, Any] = _plain(record)
    return plain


@router.delete("/id-tokens/{token}", tags=["id-tokens"], status_code=204)
async def delete_id_token(token: TokenPath, ctx: Context) -> Response:
    if await ctx.storage.get_token(token) is None:
        raise NotFound("id token", token)
    await ctx.chargers.delete_token(token)
    return Response(status_code=204)


@router.get("/reservations/{reservation_id}", tags=["reservations"])
async def get_reservation(reservation_id: RowId, ctx: Context) -> dict[str, Any]:
    reservation = await ctx.storage.get_reservation(reservation_id)
    if reservation is None:
        raise NotFound("reservation", reservation_id)
    # 1.6 chargers send no message when a reservation lapses: past its expiry it is Expired.
    if reservation["status"] == "Accepted" and reservation["expiry"] <= ctx.clock():
        reservation["status"] = "Expired"
    return reservation
