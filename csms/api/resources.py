"""Read and manage stored resources: stations, transactions, id tokens, reservations.

Who may: admins everything. Operators the stations wired under their sites, and those stations' transactions and
reservations. Drivers only the transactions and reservations of their own id tokens, and their tokens (read only).
Anything not the caller's is the same 404 as a missing one (csms.api.auth).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from csms.api.auth import CurrentPrincipal, require_admin, require_station, visible_station_ids
from csms.api.context import ApiContext
from csms.api.paging import Context, Limit, Offset, RowId, page, plain
from csms.api.tariffs import cost_json
from csms.domain.accounts import Principal, Role
from csms.domain.stations import RegistrationStatus
from csms.domain.tokens import AuthorizationStatus, IdTokenRecord
from csms.domain.transactions import Transaction
from csms.errors import Forbidden, InvalidRequest, NotFound

__all__ = ["router"]

router = APIRouter()


@router.get("/stations", tags=["stations"])
async def list_stations(
    ctx: Context, principal: CurrentPrincipal, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    """Every station (admins) or those wired under the caller's sites (operators)."""
    stations = await ctx.storage.list_stations(limit, offset, visible_station_ids(ctx, principal))
    body = page(stations, limit, offset)
    for item in body["items"]:
        item["connected"] = ctx.registry.get(item["id"]) is not None
    return body


@router.get("/stations/{station_id}", tags=["stations"])
async def get_station(station_id: str, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    require_station(ctx, principal, station_id)
    return await _station_body(ctx, station_id)


class StationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    registration: RegistrationStatus


@router.patch("/stations/{station_id}", tags=["stations"])
async def update_station(
    station_id: str, update: StationUpdate, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Accept (or reject) a station; it takes effect at its next BootNotification."""
    require_station(ctx, principal, station_id)
    if await ctx.storage.get_station(station_id) is None:
        raise NotFound("station", station_id)
    await ctx.chargers.set_registration(station_id, update.registration)
    return await _station_body(ctx, station_id)


@router.get("/stations/{station_id}/events", tags=["stations"])
async def list_station_events(
    station_id: str,
    ctx: Context,
    principal: CurrentPrincipal,
    action: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    require_station(ctx, principal, station_id)
    return page(await ctx.storage.list_events(station_id, action, limit, offset), limit, offset)


@router.get("/stations/{station_id}/variables", tags=["stations"])
async def list_station_variables(station_id: str, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    require_station(ctx, principal, station_id)
    rows = await ctx.storage.list_variables(station_id)
    return {"items": rows}


async def _station_body(ctx: ApiContext, station_id: str) -> dict[str, Any]:
    station = await ctx.storage.get_station(station_id)
    if station is None:
        raise NotFound("station", station_id)
    session = ctx.registry.get(station_id)
    body: dict[str, Any] = plain(station)
    body["connected"] = session is not None
    body["connected_protocol"] = session.adapter.version.subprotocol if session else None
    body["connectors"] = [plain(c) for c in await ctx.storage.list_connectors(station_id)]
    return body


# -- transactions -------------------------------------------------------------------------------------------


@router.get("/transactions", tags=["transactions"])
async def list_transactions(
    ctx: Context,
    principal: CurrentPrincipal,
    station_id: str | None = None,
    active: bool | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Newest first: every session (admins), those at the caller's sites (operators), or the caller's own (drivers)."""
    if principal.role is Role.DRIVER:
        found = await ctx.storage.list_transactions(limit, offset, station_id, active, owner=principal.account_id)
    else:
        stations = visible_station_ids(ctx, principal)
        found = await ctx.storage.list_transactions(limit, offset, station_id, active, station_ids=stations)
    return page([_transaction_body(t) for t in found], limit, offset)


@router.get("/transactions/{transaction_id}", tags=["transactions"])
async def get_transaction(transaction_id: RowId, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """A session with its energy and, where a tariff priced it, its cost breakdown (null otherwise)."""
    transaction = await _visible_transaction(ctx, principal, transaction_id)
    body = _transaction_body(transaction)
    body["cost"] = None
    if ctx.session_rules is not None:
        try:
            body["cost"] = cost_json(await ctx.session_rules.cost(transaction_id, ctx.clock()))
        except NotFound:
            pass  # not priced: no tariff applied to this session
    return body


@router.get("/transactions/{transaction_id}/meter-values", tags=["transactions"])
async def list_meter_values(
    transaction_id: RowId, ctx: Context, principal: CurrentPrincipal, limit: Limit = 1000, offset: Offset = 0
) -> dict[str, Any]:
    await _visible_transaction(ctx, principal, transaction_id)
    return page(await ctx.storage.list_meter_values(transaction_id, limit, offset), limit, offset)


def _transaction_body(transaction: Transaction) -> dict[str, Any]:
    body: dict[str, Any] = plain(transaction)
    body["energy_wh"] = transaction.energy_wh
    return body


async def _visible_transaction(ctx: ApiContext, principal: Principal, transaction_id: int) -> Transaction:
    transaction = await ctx.storage.get_transaction(transaction_id)
    if transaction is None or not await _may_see(ctx, principal, transaction.station_id, transaction.id_token):
        raise NotFound("transaction", transaction_id)
    return transaction


async def _may_see(ctx: ApiContext, principal: Principal, station_id: str, id_token: str | None) -> bool:
    """A station's session or reservation: admins all, operators at their sites, drivers of their own tokens."""
    if principal.is_admin:
        return True
    if principal.role is Role.OPERATOR:
        site_id = ctx.grid.site_of_station(station_id)
        return site_id is not None and principal.may_manage_site(site_id)
    if id_token is None:
        return False
    record = await ctx.storage.get_token(id_token)
    return record is not None and record.owner == principal.account_id


# -- id tokens ----------------------------------------------------------------------------------------------


class IdTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: AuthorizationStatus = AuthorizationStatus.ACCEPTED
    token_type: str = Field(default="ISO14443", max_length=20)
    expiry: AwareDatetime | None = None
    parent_id: str | None = Field(default=None, max_length=36)
    group_id: str | None = Field(default=None, max_length=36)
    owner: str | None = Field(default=None, max_length=36, description="the driver account the token belongs to")


TokenPath = Annotated[str, Field(min_length=1, max_length=36)]


@router.get("/id-tokens", tags=["id-tokens"])
async def list_id_tokens(
    ctx: Context, principal: CurrentPrincipal, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    """Every token (admins) or the caller's own (drivers). Tokens work at every site: operators do not list them."""
    owner = _token_owner_scope(principal)
    return page(await ctx.storage.list_tokens(limit, offset, owner), limit, offset)


@router.get("/id-tokens/{token}", tags=["id-tokens"])
async def get_id_token(token: TokenPath, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    owner = _token_owner_scope(principal)
    record = await ctx.storage.get_token(token)
    if record is None or (owner is not None and record.owner != owner):
        raise NotFound("id token", token)
    body: dict[str, Any] = plain(record)
    return body


@router.put("/id-tokens/{token}", tags=["id-tokens"])
async def put_id_token(
    token: TokenPath, body: IdTokenBody, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Create or replace a token; ``owner`` links it to a driver account (its sessions and bookings)."""
    require_admin(principal)
    if body.owner is not None:
        account = ctx.accounts.find(body.owner)
        if account is None:
            raise InvalidRequest(f"owner: no account {body.owner}")
        if account.role is not Role.DRIVER:
            raise InvalidRequest(f"owner: account {body.owner} is an {account.role.value}, not a driver")
    record = IdTokenRecord(token=token, **body.model_dump())
    await ctx.chargers.put_token(record, ctx.clock())
    plain_record: dict[str, Any] = plain(record)
    return plain_record


@router.delete("/id-tokens/{token}", tags=["id-tokens"], status_code=204)
async def delete_id_token(token: TokenPath, ctx: Context, principal: CurrentPrincipal) -> Response:
    require_admin(principal)
    if await ctx.storage.get_token(token) is None:
        raise NotFound("id token", token)
    await ctx.chargers.delete_token(token)
    return Response(status_code=204)


def _token_owner_scope(principal: Principal) -> str | None:
    """None: every token (admins); a driver's account id; operators are refused."""
    if principal.role is Role.OPERATOR:
        raise Forbidden("id tokens are managed by admins; operators see a session's token on the session")
    return None if principal.is_admin else principal.account_id


# -- reservations -------------------------------------------------------------------------------------------


@router.get("/reservations/{reservation_id}", tags=["reservations"])
async def get_reservation(reservation_id: RowId, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    reservation = await ctx.storage.get_reservation(reservation_id)
    if reservation is None or not await _may_see(ctx, principal, reservation["station_id"], reservation["id_token"]):
        raise NotFound("reservation", reservation_id)
    # 1.6 chargers send no message when a reservation lapses: past its expiry it is Expired.
    if reservation["status"] == "Accepted" and reservation["expiry"] <= ctx.clock():
        reservation["status"] = "Expired"
    return reservation
