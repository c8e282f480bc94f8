"""Charging profiles, version-neutral (1.6 csChargingProfiles / 2.0.1 chargingProfile)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "ChargingProfile",
    "ChargingProfileKind",
    "ChargingProfilePurpose",
    "ChargingRateUnit",
    "ChargingSchedule",
    "SchedulePeriod",
]


class ChargingProfilePurpose(StrEnum):
    # 1.6 calls the station-wide limit ChargePointMaxProfile; 2.0.1 ChargingStationMaxProfile.
    STATION_MAX = "ChargingStationMaxProfile"
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"


class ChargingProfileKind(StrEnum):
    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


class ChargingRateUnit(StrEnum):
    AMPERE = "A"
    WATT = "W"


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    start_period: int  # seconds from the schedule start
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingSchedule:
    unit: ChargingRateUnit
    periods: tuple[SchedulePeriod, ...]
    duration: int | None = None
    start_schedule: datetime | None = None
    min_charging_rate: float | None = None
    id: int = 1  # 2.0.1 only


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    id: int
    stack_level: int
    purpose: ChargingProfilePurpose
    kind: ChargingProfileKind
    schedule: ChargingSchedule
    transaction_id: str | None = None  # the charger's transaction id (1.6: our integer as text)
    recurrency: str | None = None  # Daily / Weekly
    valid_from: datetime | None = None
    valid_to: datetime | None = None
