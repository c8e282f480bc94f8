"""Operator commands to a charger, version-neutral. Each protocol adapter maps them to its OCPP version.

Where OCPP 1.6 has a connectorId and 2.0.1 an evseId (+ connectorId), commands carry ``evse_id``: for 1.6 the
EVSE number is the connector number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from csms.domain.charging import ChargingProfile, ChargingProfilePurpose, ChargingRateUnit

__all__ = [
    "CancelReservation",
    "ChangeAvailability",
    "ClearCache",
    "ClearChargingProfile",
    "Command",
    "CommandResult",
    "DataTransfer",
    "GetBaseReport",
    "GetChargingProfiles",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetLocalListVersion",
    "GetLog",
    "GetVariables",
    "LocalListEntry",
    "RemoteStart",
    "RemoteStop",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "SetConfiguration",
    "SetVariables",
    "TriggerMessage",
    "UnlockConnector",
    "UpdateFirmware",
    "VariableRef",
]


@dataclass(frozen=True, slots=True)
class RemoteStart:
    id_token: str
    evse_id: int | None = None
    charging_profile: ChargingProfile | None = None
    remote_start_id: int = 1  # 2.0.1 correlates the TransactionEvent with this id


@dataclass(frozen=True, slots=True)
class RemoteStop:
    transaction_id: str  # the charger's transaction id (1.6: our integer id as text)


@dataclass(frozen=True, slots=True)
class Reset:
    hard: bool = False
    evse_id: int | None = None  # 2.0.1 only


@dataclass(frozen=True, slots=True)
class UnlockConnector:
    evse_id: int
    connector_id: int = 1


@dataclass(frozen=True, slots=True)
class ChangeAvailability:
    operative: bool
    evse_id: int = 0
    connector_id: int | None = None


@dataclass(frozen=True, slots=True)
class TriggerMessage:
    message: str  # e.g. BootNotification, Heartbeat, StatusNotification, MeterValues
    evse_id: int | None = None
    connector_id: int | None = None


@dataclass(frozen=True, slots=True)
class GetConfiguration:
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SetConfiguration:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class VariableRef:
    component: str
    variable: str
    evse_id: int | None = None
    connector_id: int | None = None
    component_instance: str | None = None
    variable_instance: str | None = None
    attribute_type: str | None = None
    value: str | None = None  # only for SetVariables


@dataclass(frozen=True, slots=True)
class GetVariables:
    variables: tuple[VariableRef, ...]


@dataclass(frozen=True, slots=True)
class SetVariables:
    variables: tuple[VariableRef, ...]


@dataclass(frozen=True, slots=True)
class GetBaseReport:
    request_id: int
    report_base: str = "FullInventory"


@dataclass(frozen=True, slots=True)
class ClearCache:
    pass


@dataclass(frozen=True, slots=True)
class LocalListEntry:
    id_token: str
    status: str | None = None  # None removes the entry in a Differential update
    expiry: datetime | None = None
    parent_id: str | None = None
    token_type: str = "ISO14443"


@dataclass(frozen=True, slots=True)
class SendLocalList:
    version: int
    full: bool
    entries: tuple[LocalListEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class GetLocalListVersion:
    pass


@dataclass(frozen=True, slots=True)
class SetChargingProfile:
    evse_id: int
    profile: ChargingProfile


@dataclass(frozen=True, slots=True)
class ClearChargingProfile:
    profile_id: int | None = None
    evse_id: int | None = None
    purpose: ChargingProfilePurpose | None = None
    stack_level: int | None = None


@dataclass(frozen=True, slots=True)
class GetChargingProfiles:
    request_id: int
    evse_id: int | None = None
    purpose: ChargingProfilePurpose | None = None
    stack_level: int | None = None
    profile_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class GetCompositeSchedule:
    evse_id: int
    duration: int
    unit: ChargingRateUnit | None = None


@dataclass(frozen=True, slots=True)
class ReserveNow:
    reservation_id: int
    id_token: str
    expiry: datetime
    evse_id: int | None = None  # None or 0: any connector/EVSE
    parent_id: str | None = None
    connector_type: str | None = None  # 2.0.1 only


@dataclass(frozen=True, slots=True)
class CancelReservation:
    reservation_id: int


@dataclass(frozen=True, slots=True)
class UpdateFirmware:
    location: str
    retrieve_at: datetime
    request_id: int = 1
    retries: int | None = None
    retry_interval: int | None = None
    signing_certificate: str | None = None  # 2.0.1 / 1.6 SignedUpdateFirmware
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class GetLog:
    """Diagnostics upload: ``log_type`` None is 1.6 GetDiagnostics / 2.0.1 GetLog DiagnosticsLog; a log type
    (DiagnosticsLog, SecurityLog) asks for the security extension's GetLog on 1.6."""

    location: str
    request_id: int = 1
    log_type: str | None = None
    oldest: datetime | None = None
    latest: datetime | None = None
    retries: int | None = None
    retry_interval: int | None = None


@dataclass(frozen=True, slots=True)
class DataTransfer:
    vendor_id: str
    message_id: str | None = None
    data: Any = field(default=None)


Command = (
    RemoteStart
    | RemoteStop
    | Reset
    | UnlockConnector
    | ChangeAvailability
    | TriggerMessage
    | GetConfiguration
    | SetConfiguration
    | GetVariables
    | SetVariables
    | GetBaseReport
    | ClearCache
    | SendLocalList
    | GetLocalListVersion
    | SetChargingProfile
    | ClearChargingProfile
    | GetChargingProfiles
    | GetCompositeSchedule
    | ReserveNow
    | CancelReservation
    | UpdateFirmware
    | GetLog
    | DataTransfer
)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A charger's answer to a command, in its own version's terms."""

    action: str
    request: dict[str, Any]
    response: dict[str, Any]

    @property
    def status(self) -> str | None:
        status = self.response.get("status")
        return status if isinstance(status, str) else None
