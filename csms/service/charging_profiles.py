"""Charging profiles for smart charging, fitted to what each charger says it can do.

1.6 chargers advertise ChargeProfileMaxStackLevel, ChargingScheduleMaxPeriods,
ChargingScheduleAllowedChargingRateUnit and MaxChargingProfilesInstalled (GetConfiguration); 2.0.1 stations
the SmartChargingCtrlr variables ProfileStackLevel, PeriodsPerSchedule, RateUnit and Entries (GetVariables).
Until a charger has answered, conservative defaults apply: stack levels 0..1, a few periods, amps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from csms.domain.charging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    SchedulePeriod,
)
from csms.domain.commands import GetConfiguration, GetVariables, VariableRef
from csms.scheduler.model import Period, current_at

__all__ = [
    "Capabilities",
    "above_somewhere",
    "capabilities_from_answer",
    "capabilities_from_configuration",
    "capabilities_from_variables",
    "capability_query",
    "profile_end",
    "schedule_in_amps",
    "station_max_profile",
    "tx_default_profile",
    "tx_profile",
]

# Our profile ids: one TxProfile per EVSE (a new one with the same id replaces the old), one TxDefaultProfile.
TX_PROFILE_ID_BASE = 9100
TX_DEFAULT_PROFILE_ID = 9000
STATION_MAX_PROFILE_ID = 8999
# Chargers whose clock runs a little behind would otherwise see a schedule that "starts in the future".
_CLOCK_SKEW_ALLOWANCE = timedelta(seconds=60)
# Limits go out to 0.1 A or 0.1 W: two schedules closer than this are the same one.
_ROUNDING_A = 0.05
_MOMENT = timedelta(seconds=2)

_V16_KEYS = (
    "ChargeProfileMaxStackLevel",
    "ChargingScheduleMaxPeriods",
    "ChargingScheduleAllowedChargingRateUnit",
    "MaxChargingProfilesInstalled",
)
_V201_VARIABLES = ("ProfileStackLevel", "PeriodsPerSchedule", "RateUnit", "Entries")


@dataclass(frozen=True, slots=True)
class Capabilities:
    max_stack_level: int = 1
    max_periods: int = 5
    units: frozenset[ChargingRateUnit] = frozenset({ChargingRateUnit.AMPERE})
    max_profiles: int | None = None

    @property
    def unit(self) -> ChargingRateUnit:
        return ChargingRateUnit.AMPERE if ChargingRateUnit.AMPERE in self.units else ChargingRateUnit.WATT


def capability_query(version: str) -> GetConfiguration | GetVariables:
    if version == "1.6":
        return GetConfiguration(keys=_V16_KEYS)
    return GetVariables(tuple(VariableRef("SmartChargingCtrlr", name) for name in _V201_VARIABLES))


def capabilities_from_answer(version: str, response: dict[str, Any]) -> Capabilities:
    """Capabilities from the answer to ``capability_query(version)``."""
    if version == "1.6":
        return capabilities_from_configuration(response)
    return capabilities_from_variables(response)


def capabilities_from_configuration(response: dict[str, Any]) -> Capabilities:
    values = {
        item.get("key"): item.get("value")
        for item in response.get("configurationKey", [])
        if isinstance(item, dict) and isinstance(item.get("value"), str)
    }
    return _capabilities(
        values.get("ChargeProfileMaxStackLevel"),
        values.get("ChargingScheduleMaxPeriods"),
        values.get("ChargingScheduleAllowedChargingRateUnit"),
        values.get("MaxChargingProfilesInstalled"),
    )


def capabilities_from_variables(response: dict[str, Any]) -> Capabilities:
    values = {
        item.get("variable", {}).get("name"): item.get("attributeValue")
        for item in response.get("getVariableResult", [])
        if isinstance(item, dict) and item.get("attributeStatus") == "Accepted"
    }
    return _capabilities(
        values.get("ProfileStackLevel"),
        values.get("PeriodsPerSchedule"),
        values.get("RateUnit"),
        values.get("Entries"),
    )


def _capabilities(stack: Any, periods: Any, units: Any, profiles: Any) -> Capabilities:
    default = Capabilities()
    parsed_units = _units(units) if isinstance(units, str) else default.units
    return Capabilities(
        max_stack_level=_int(stack, default.max_stack_level),
        max_periods=max(1, _int(periods, default.max_periods)),
        units=parsed_units or default.units,
        max_profiles=_int(profiles, 0) or None,
    )


def _int(text: Any, default: int) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        return default


def _units(text: str) -> frozenset[ChargingRateUnit]:
    units: set[ChargingRateUnit] = set()
    for part in text.replace(" ", "").split(","):
        if part in ("Current", "A"):
            units.add(ChargingRateUnit.AMPERE)
        elif part in ("Power", "W"):
            units.add(ChargingRateUnit.WATT)
    return frozenset(units)


def tx_profile(
    evse_id: int,
    transaction_id: str,
    periods: Sequence[Period],
    now: datetime,
    validity: timedelta,
    stack_level: int,
    capabilities: Capabilities,
    watts_per_amp: float,
) -> ChargingProfile:
    """The session's planned limits for the next ``validity``, then nothing: its TxDefaultProfile takes over.

    A bounded duration is the failsafe: if we lose the station, its limit decays to the safe default instead
    of staying at whatever the last plan allowed.
    """
    start = now - _CLOCK_SKEW_ALLOWANCE
    duration = validity + _CLOCK_SKEW_ALLOWANCE
    schedule_periods: list[SchedulePeriod] = []
    for period in periods:
        offset = max(0, int((period.start - start).total_seconds()))
        if offset >= duration.total_seconds() or len(schedule_periods) == capabilities.max_periods:
            break
        limit = _limit(period.current_a, capabilities.unit, watts_per_amp)
        if schedule_periods and offset <= schedule_periods[-1].start_period:
            schedule_periods[-1] = SchedulePeriod(schedule_periods[-1].start_period, limit)
        elif not schedule_periods or schedule_periods[-1].limit != limit:
            schedule_periods.append(SchedulePeriod(0 if not schedule_periods else offset, limit))
    return ChargingProfile(
        id=TX_PROFILE_ID_BASE + evse_id,
        stack_level=min(stack_level, capabilities.max_stack_level),
        purpose=ChargingProfilePurpose.TX,
        kind=ChargingProfileKind.ABSOLUTE,
        schedule=ChargingSchedule(
            unit=capabilities.unit,
            periods=tuple(schedule_periods),
            duration=int(duration.total_seconds()),
            start_schedule=start,
        ),
        transaction_id=transaction_id,
    )


def schedule_in_amps(profile: ChargingProfile, watts_per_amp: float) -> tuple[Period, ...]:
    """An absolute profile's periods as limits in A from absolute instants (what a station steps through)."""
    start = profile.schedule.start_schedule
    if start is None:
        return ()
    per_unit = 1.0 if profile.schedule.unit is ChargingRateUnit.AMPERE else 1.0 / watts_per_amp
    return tuple(
        Period(start + timedelta(seconds=period.start_period), period.limit * per_unit)
        for period in profile.schedule.periods
    )


def profile_end(profile: ChargingProfile) -> datetime:
    """When an absolute profile lapses (its schedule's start plus its duration)."""
    schedule = profile.schedule
    assert schedule.start_schedule is not None and schedule.duration is not None, "an absolute, bounded profile"
    return schedule.start_schedule + timedelta(seconds=schedule.duration)


def above_somewhere(held: Sequence[Period], wanted: Sequence[Period], start: datetime, end: datetime) -> bool:
    """Whether the step function ``held`` is above ``wanted`` (by more than rounding) for more than a moment
    anywhere in [start, end). A moment: periods start at whole seconds after a schedule start that is the time
    of the plan, so the same step sent twice lands up to a second apart."""
    instants = sorted({start, *(p.start for p in (*held, *wanted) if start < p.start < end), end})
    return any(
        current_at(held, t, before=0.0) > current_at(wanted, t, before=0.0) + _ROUNDING_A
        for t, following in zip(instants, instants[1:], strict=False)
        if following - t > _MOMENT
    )


def tx_default_profile(current_a: float, capabilities: Capabilities, watts_per_amp: float) -> ChargingProfile:
    """Every EVSE's limit when no TxProfile of ours is in force: the station's safe share of its site."""
    return _standing_limit(
        TX_DEFAULT_PROFILE_ID, ChargingProfilePurpose.TX_DEFAULT, current_a, capabilities, watts_per_amp
    )


def station_max_profile(current_a: float, capabilities: Capabilities, watts_per_amp: float) -> ChargingProfile:
    """The station's own ceiling (1.6 ChargePointMaxProfile, 2.0.1 ChargingStationMaxProfile) for all its EVSEs.

    It caps the sum over the station's EVSEs at what its supply circuit carries, whatever TxProfiles or defaults
    are in force: a guard against a wrong or lost plan, not a steering tool, so it is written once per boot.
    """
    return _standing_limit(
        STATION_MAX_PROFILE_ID, ChargingProfilePurpose.STATION_MAX, current_a, capabilities, watts_per_amp
    )


def _standing_limit(
    profile_id: int,
    purpose: ChargingProfilePurpose,
    current_a: float,
    capabilities: Capabilities,
    watts_per_amp: float,
) -> ChargingProfile:
    """One limit that holds until replaced (relative, a single period, stack level 0)."""
    return ChargingProfile(
        id=profile_id,
        stack_level=0,
        purpose=purpose,
        kind=ChargingProfileKind.RELATIVE,
        schedule=ChargingSchedule(
            unit=capabilities.unit,
            periods=(SchedulePeriod(0, _limit(current_a, capabilities.unit, watts_per_amp)),),
        ),
    )


def _limit(current_a: float, unit: ChargingRateUnit, watts_per_amp: float) -> float:
    if unit is ChargingRateUnit.AMPERE:
        return round(current_a, 1)
    return round(current_a * watts_per_amp, 1)
