"""POST /api/v1/stations/{station_id}/commands/{command}: one route per version-neutral command.

The request body of each route is the command's own dataclass, so the OpenAPI document shows every field.
"""

# No ``from __future__ import annotations`` here: the route bodies are annotated with a loop variable and
# FastAPI must see the class itself, not its name.

import dataclasses
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from csms.api.auth import CurrentPrincipal, require_station
from csms.api.context import ApiContext, api_context
from csms.domain import commands as c
from csms.domain.accounts import Principal, Role
from csms.domain.security import is_password_command
from csms.domain.stations import StationId
from csms.errors import Forbidden, InvalidRequest, NotFound

__all__ = ["COMMAND_ROUTES", "router"]

COMMAND_ROUTES: dict[str, type[Any]] = {
    "remote-start": c.RemoteStart,
    "remote-stop": c.RemoteStop,
    "reset": c.Reset,
    "unlock-connector": c.UnlockConnector,
    "change-availability": c.ChangeAvailability,
    "trigger-message": c.TriggerMessage,
    "get-configuration": c.GetConfiguration,
    "change-configuration": c.SetConfiguration,
    "get-variables": c.GetVariables,
    "set-variables": c.SetVariables,
    "get-base-report": c.GetBaseReport,
    "clear-cache": c.ClearCache,
    "send-local-list": c.SendLocalList,
    "get-local-list-version": c.GetLocalListVersion,
    "set-charging-profile": c.SetChargingProfile,
    "clear-charging-profile": c.ClearChargingProfile,
    "get-charging-profiles": c.GetChargingProfiles,
    "get-composite-schedule": c.GetCompositeSchedule,
    "reserve-now": c.ReserveNow,
    "cancel-reservation": c.CancelReservation,
    "update-firmware": c.UpdateFirmware,
    "get-log": c.GetLog,
    "data-transfer": c.DataTransfer,
}

router = APIRouter(tags=["commands"])

_PASSWORD_ROUTE = "change a station's password with POST /api/v1/stations/{station_id}/security/rotate-password"


def _reject_naive_times(value: Any, path: str = "body") -> None:
    """Times without an offset are ambiguous for a charger in another zone: refuse them."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise InvalidRequest(f"{path}: timestamp {value.isoformat()} has no time zone offset")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            _reject_naive_times(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            _reject_naive_times(item, f"{path}[{index}]")


def _refuse_password_changes(command: object) -> None:
    """A password sent past the security service would lock the station out: we would check the old one."""
    if isinstance(command, c.SetConfiguration) and is_password_command([command.key]):
        raise InvalidRequest(f"{_PASSWORD_ROUTE}, not change-configuration: it also updates the stored hash")
    if isinstance(command, c.SetVariables) and is_password_command(ref.variable for ref in command.variables):
        raise InvalidRequest(f"{_PASSWORD_ROUTE}, not set-variables: it also updates the stored hash")


async def _authorise(ctx: ApiContext, principal: Principal, station_id: str, command: object) -> None:
    """Operators command their sites' stations. A driver's app may start a session with the driver's own token
    and stop the driver's own session, at any site (as the driver could at the charger); nothing else."""
    if principal.role is not Role.DRIVER:
        require_station(ctx, principal, station_id)
        return
    if isinstance(command, c.RemoteStart):
        record = await ctx.storage.get_token(command.id_token)
        if record is None or record.owner != principal.account_id:
            raise NotFound("id token", command.id_token)
        if record.status.value != "Accepted":
            raise InvalidRequest(f"id token {command.id_token} is {record.status.value}: it cannot start a session")
        return
    if isinstance(command, c.RemoteStop):
        transaction = await ctx.storage.find_transaction(station_id, command.transaction_id)
        record = await ctx.storage.get_token(transaction.id_token) if transaction and transaction.id_token else None
        if record is None or record.owner != principal.account_id:
            raise NotFound("transaction", command.transaction_id)
        return
    raise Forbidden("drivers may only start a session with their own token and stop their own session")


def _add_route(name: str, command_type: type[Any]) -> None:
    async def run_command(
        station_id: str,
        body: command_type,  # type: ignore[valid-type]
        ctx: Annotated[ApiContext, Depends(api_context)],
        principal: CurrentPrincipal,
    ) -> dict[str, Any]:
        await _authorise(ctx, principal, station_id, body)
        _reject_naive_times(body)
        _refuse_password_changes(body)
        result = await ctx.commands.execute(StationId(station_id), body, ctx.clock())
        return {
            "station_id": station_id,
            "action": result.action,
            "status": result.status,
            "request": result.request,
            "response": result.response,
        }

    run_command.__name__ = f"command_{name.replace('-', '_')}"
    router.add_api_route(
        f"/stations/{{station_id}}/commands/{name}",
        run_command,
        methods=["POST"],
        summary=command_type.__name__,
    )


for _name, _type in COMMAND_ROUTES.items():
    _add_route(_name, _type)
