"""Operator commands to live chargers: one version-neutral entry point, with an audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import structlog

from csms.domain.commands import (
    CancelReservation,
    Command,
    CommandResult,
    GetConfiguration,
    ReserveNow,
)
from csms.domain.security import redact_secrets
from csms.domain.stations import StationId
from csms.errors import StationError, StationOffline
from csms.storage import sql
from csms.storage.sql import SqlStorage
from csms.storage.writer import Write

__all__ = ["CommandService", "LiveStation", "LiveStations"]

log = structlog.get_logger(__name__)


class LiveStation(Protocol):
    @property
    def version(self) -> str: ...

    async def execute(self, command: Command) -> CommandResult: ...


class LiveStations(Protocol):
    def get(self, station_id: str) -> LiveStation | None: ...


class CommandService:
    def __init__(self, storage: SqlStorage, live: LiveStations) -> None:
        self._storage = storage
        self._live = live

    def is_connected(self, station_id: str) -> bool:
        return self._live.get(station_id) is not None

    def version(self, station_id: str) -> str | None:
        """The OCPP version of the station's live connection ("1.6", "2.0.1"), None when offline."""
        station = self._live.get(station_id)
        return station.version if station is not None else None

    async def execute(self, station_id: StationId, command: Command, now: datetime) -> CommandResult:
        """Send ``command`` to the station's live connection; its answer and effects are stored.

        Raises:
            StationOffline: no live connection. Other StationError subclasses when no answer came back.
        """
        station = self._live.get(station_id)
        if station is None:
            raise StationOffline(station_id)
        name = type(command).__name__
        try:
            result = await station.execute(command)
        except StationError as exc:
            await self._storage.write([_audit(station_id, name, {"error": str(exc)}, now)])
            raise
        # Password changes (csms.service.station_security) pass through here: audits never hold the password.
        audit = {
            "request": redact_secrets(result.request),
            "response": redact_secrets(result.response),
        }
        writes = [_audit(station_id, result.action, audit, now), *_effects(station_id, command, result, now)]
        await self._storage.write(writes)
        return result


def _audit(station_id: str, action: str, payload: dict[str, Any], now: datetime) -> Write:
    return sql.record_event(station_id, f"Command.{action}", payload, now)


def _effects(station_id: str, command: Command, result: CommandResult, now: datetime) -> list[Write]:
    """What an accepted answer changes in our own records."""
    match command:
        case ReserveNow() if result.status == "Accepted":
            return [
                sql.record_reservation(
                    command.reservation_id,
                    station_id,
                    command.evse_id,
                    command.id_token,
                    command.expiry,
                    "Accepted",
                    now,
                )
            ]
        case CancelReservation() if result.status == "Accepted":
            return [sql.set_reservation_status(command.reservation_id, "Cancelled", now)]
        case GetConfiguration():
            return [
                sql.record_variable(
                    station_id,
                    {
                        "component": "OCPP16Configuration",
                        "variable": item["key"],
                        "value": redact_secrets(item).get("value"),
                        "mutability": "ReadOnly" if item.get("readonly") else "ReadWrite",
                    },
                    now,
                )
                for item in result.response.get("configurationKey", [])
                if isinstance(item, dict) and isinstance(item.get("key"), str)
            ]
    return []
