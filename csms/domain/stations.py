"""Stations, their connectors and the boot policy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NewType

__all__ = [
    "BootDecision",
    "ConnectorState",
    "ConnectorStatus",
    "RegistrationStatus",
    "Station",
    "StationId",
    "StationInfo",
    "decide_boot",
    "is_identifier_string",
    "is_valid_identity",
]

StationId = NewType("StationId", str)

# 2.0.1 part 4 §3.1.1: at most 48 characters and no ':' (it separates Basic-auth user and password).
_MAX_IDENTITY_LENGTH = 48
_FORBIDDEN_IDENTITY_CHARACTERS = frozenset(":/?#[]@\\ \t\r\n") | frozenset(chr(c) for c in range(32))


def is_valid_identity(identity: str) -> bool:
    return 0 < len(identity) <= _MAX_IDENTITY_LENGTH and not (set(identity) & _FORBIDDEN_IDENTITY_CHARACTERS)


# OCPP 2.0.1 part 4 §3.1.1: the identity is an identifierString (part 2 §2.1.13: a-z A-Z 0-9 * - _ = : + | @ .)
# of at most 48 characters, without ':' (it separates the Basic-auth user from the password).
_IDENTIFIER_STRING = re.compile(r"[A-Za-z0-9*\-_=+|@.]{1,48}")


def is_identifier_string(identity: str) -> bool:
    """Whether ``identity`` may name a 2.0.1 station (1.6 has no such rule: see security.v16_identifier_string)."""
    return _IDENTIFIER_STRING.fullmatch(identity) is not None


class RegistrationStatus(StrEnum):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class ConnectorStatus(StrEnum):
    """Union of 1.6 ChargePointStatus and 2.0.1 ConnectorStatus values, as the charger reported them."""

    AVAILABLE = "Available"
    OCCUPIED = "Occupied"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


@dataclass(frozen=True, slots=True)
class StationInfo:
    """What a charger says about itself in BootNotification."""

    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None
    boot_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Station:
    id: StationId
    registration: RegistrationStatus
    protocol: str | None = None
    info: StationInfo | None = None
    last_seen: datetime | None = None
    firmware_status: str | None = None
    diagnostics_status: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectorState:
    """Status of one connector. 1.6 connector N is EVSE N with connector 1; connector 0 is the station."""

    station_id: StationId
    evse_id: int
    connector_id: int
    status: ConnectorStatus
    error_code: str | None
    timestamp: datetime
    info: str | None = None
    vendor_error_code: str | None = None


@dataclass(frozen=True, slots=True)
class BootDecision:
    status: RegistrationStatus
    register: bool  # True when the station is new: it is stored with ``status`` so operators can see it


def decide_boot(
    known: RegistrationStatus | None, auto_register: bool, unknown_status: RegistrationStatus
) -> BootDecision:
    """Known stations keep their registration; unknown ones are accepted or held by policy.

    An unknown station is stored either way, so an operator can see who knocked and accept it.
    """
    if known is not None:
        return BootDecision(known, register=False)
    if auto_register:
        return BootDecision(RegistrationStatus.ACCEPTED, register=True)
    return BootDecision(unknown_status, register=True)
