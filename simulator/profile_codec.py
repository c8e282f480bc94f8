"""Translate charging profiles between the OCPP wire form (snake_case dicts from `ocpp`) and `profiles`.

`ocpp` hands nested objects to handlers as plain dicts; 1.6 numbers may arrive as `Decimal`
(its validator parses some actions with `parse_float=Decimal`), hence the `float()`/`int()` calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.clock import parse_ts
from simulator.profiles import (
    ChargingProfile,
    CompositePeriod,
    Limit,
    ProfileKind,
    Purpose,
    RateUnit,
    Recurrency,
    Schedule,
    SchedulePeriod,
)

__all__ = [
    "ProfileFormatError",
    "composite_periods_to_wire",
    "profile_from_v16",
    "profile_from_v201",
    "purpose_to_v16",
    "purpose_to_v201",
]

_PURPOSE_16 = {
    "ChargePointMaxProfile": Purpose.STATION_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}
_PURPOSE_201 = {
    "ChargingStationMaxProfile": Purpose.STATION_MAX,
    "ChargingStationExternalConstraints": Purpose.EXTERNAL,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}


class ProfileFormatError(ValueError):
    """The profile is schema-valid but semantically unusable (e.g. periods out of order)."""


def purpose_to_v16(purpose: Purpose) -> str:
    return next(k for k, v in _PURPOSE_16.items() if v is purpose)


def purpose_to_v201(purpose: Purpose) -> str:
    return next(k for k, v in _PURPOSE_201.items() if v is purpose)


def _opt_ts(value: Any) -> Any:
    return parse_ts(str(value)) if value else None


def _schedule(raw: Mapping[str, Any]) -> Schedule:
    periods = tuple(
        SchedulePeriod(
            start_period=int(p["start_period"]),
            limit=float(p["limit"]),
            number_phases=int(p["number_phases"]) if p.get("number_phases") is not None else None,
        )
        for p in raw.get("charging_schedule_period", [])
    )
    if not periods:
        raise ProfileFormatError("chargingSchedulePeriod is empty")
    if periods[0].start_period != 0:
        raise ProfileFormatError("first chargingSchedulePeriod must have startPeriod 0")
    if any(b.start_period <= a.start_period for a, b in zip(periods, periods[1:], strict=False)):
        raise ProfileFormatError("chargingSchedulePeriod startPeriods must be ascending")
    if any(p.limit < 0 for p in periods):
        raise ProfileFormatError("negative limit")
    min_rate = raw.get("min_charging_rate")
    return Schedule(
        rate_unit=RateUnit(str(raw["charging_rate_unit"])),
        periods=periods,
        duration=int(raw["duration"]) if raw.get("duration") is not None else None,
        start_schedule=_opt_ts(raw.get("start_schedule")),
        min_charging_rate=float(min_rate) if min_rate is not None else None,
    )


def _common(raw: Mapping[str, Any], purposes: Mapping[str, Purpose], schedule: Schedule, pid: int) -> ChargingProfile:
    purpose_name = str(raw["charging_profile_purpose"])
    if purpose_name not in purposes:
        raise ProfileFormatError(f"unknown chargingProfilePurpose {purpose_name}")
    kind = ProfileKind(str(raw["charging_profile_kind"]))
    recurrency = Recurrency(str(raw["recurrency_kind"])) if raw.get("recurrency_kind") else None
    if kind is ProfileKind.RECURRING and recurrency is None:
        raise ProfileFormatError("Recurring profile without recurrencyKind")
    tx_id = raw.get("transaction_id")
    return ChargingProfile(
        id=pid,
        stack_level=int(raw["stack_level"]),
        purpose=purposes[purpose_name],
        kind=kind,
        schedule=schedule,
        recurrency=recurrency,
        valid_from=_opt_ts(raw.get("valid_from")),
        valid_to=_opt_ts(raw.get("valid_to")),
        transaction_id=str(tx_id) if tx_id is not None else None,
    )


def profile_from_v16(raw: Mapping[str, Any]) -> ChargingProfile:
    """Parse a 1.6 `csChargingProfiles` object."""
    return _common(raw, _PURPOSE_16, _schedule(raw["charging_schedule"]), int(raw["charging_profile_id"]))


def profile_from_v201(raw: Mapping[str, Any]) -> ChargingProfile:
    """Parse a 2.0.1 `chargingProfile` object (the first of its 1..3 schedules is used)."""
    schedules = raw.get("charging_schedule") or []
    if not schedules:
        raise ProfileFormatError("chargingSchedule is empty")
    return _common(raw, _PURPOSE_201, _schedule(schedules[0]), int(raw["id"]))


def composite_periods_to_wire(
    periods: list[CompositePeriod],
    *,
    unit: RateUnit,
    default_limit: Limit,
    voltage: float,
    default_phases: int,
) -> list[dict[str, Any]]:
    """Composite periods as `chargingSchedulePeriod` dicts; unlimited periods get `default_limit`."""
    out: list[dict[str, Any]] = []
    for period in periods:
        limit = period.limit if period.limit is not None else default_limit
        limit = Limit(min(limit.amps, default_limit.amps), limit.phases)
        phases = limit.phases or default_phases
        value = limit.amps if unit is RateUnit.AMPS else limit.amps * voltage * phases
        item: dict[str, Any] = {"start_period": period.start_offset_s, "limit": round(value, 1)}
        if limit.phases is not None:
            item["number_phases"] = limit.phases
        if out and out[-1]["limit"] == item["limit"] and out[-1].get("number_phases") == item.get("number_phases"):
            continue
        out.append(item)
    return out
