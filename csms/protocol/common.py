"""Pieces both version adapters share: the handler signature, timestamps on the wire, meter samples."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from csms.domain.commands import GetLog
from csms.domain.metering import ENERGY_REGISTER, MeterSample, SampledValue
from csms.domain.stations import StationId
from csms.protocol.errors import CallRejected
from csms.protocol.framing import ErrorCode
from csms.service.charger import ChargerService

__all__ = [
    "EARLIEST_TIME",
    "LATEST_TIME",
    "CallContext",
    "Handler",
    "format_time",
    "get_log_payload",
    "heartbeat",
    "optional",
    "parse_time",
    "recorded",
    "sample_from_wire",
]


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a handler knows about the CALL it answers."""

    station_id: StationId
    now: datetime
    service: ChargerService


Handler = Callable[[CallContext, dict[str, Any]], Awaitable[dict[str, Any]]]


# Timestamps we store must lie in this range (UTC). The schema only checks the RFC 3339 shape, which lets
# "0001-01-01T00:00:00+01:00" through (its UTC value is before year 1: OverflowError) and "9999-12-31T23:59:59Z"
# (any later arithmetic, a departure or a profile's end, overflows). A charger with an unset clock reports 1970
# (the epoch) and must still be heard; nothing real happens after 2200.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> datetime:
    """A wire timestamp (already checked as RFC 3339 with an offset by the schema) as aware UTC.

    Raises:
        CallRejected: FormatViolation for a timestamp Python cannot read (RFC 3339 allows a lower-case 't' and
            'z', year 0000) and PropertyConstraintViolation for one outside EARLIEST_TIME..LATEST_TIME.
    """
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        raise CallRejected(ErrorCode.FORMAT_VIOLATION, f"unreadable timestamp {text[:40]!r}") from None
    if moment.tzinfo is None:
        raise CallRejected(ErrorCode.FORMAT_VIOLATION, f"timestamp without a UTC offset {text[:40]!r}")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = EARLIEST_TIME - timedelta(days=1) if moment.year == 1 else LATEST_TIME
    if not EARLIEST_TIME <= utc < LATEST_TIME:
        raise CallRejected(
            ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
            f"timestamp {text[:40]!r} is outside {EARLIEST_TIME.year}..{LATEST_TIME.year - 1}",
        )
    return utc


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with 'Z': strict peers refuse naive timestamps and '+00:00' confuses some chargers."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def optional(**fields: Any) -> dict[str, Any]:
    """Only the fields that have a value: 2.0.1 forbids empty optional fields and null."""
    return {key: value for key, value in fields.items() if value is not None}


def _number(text: Any) -> float | None:
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _scaled(number: float, multiplier: int) -> float | None:
    """``number`` x 10**multiplier, or None when no float holds it.

    The schema allows any integer multiplier, and ``10.0**400`` raises OverflowError; Decimal scales exactly and
    signals what does not fit (Overflow, or InvalidOperation for an absurd exponent) as an ArithmeticError.
    """
    try:
        return _number(float(Decimal(number).scaleb(multiplier)))
    except ArithmeticError:
        return None


def sample_from_wire(meter_value: Mapping[str, Any], v201: bool) -> MeterSample:
    """One MeterValue object of either version, every attribute kept.

    1.6 sends the value as a string (and may mark it SignedData); 2.0.1 as a number with optional signed data
    and a unitOfMeasure object (whose multiplier is applied here).
    """
    values: list[SampledValue] = []
    for sampled in meter_value["sampledValue"]:
        raw = sampled["value"]
        number = _number(raw)
        raw_value: str | None = None
        if v201:
            unit_of_measure = sampled.get("unitOfMeasure") or {}
            unit = unit_of_measure.get("unit", "Wh")
            # The schema's integer may come as an integral float: 2.0, or -9223372036854775809, which the JSON
            # parser reads as the float -2**63 (inside the int64 bounds). Decimal.scaleb takes ints only.
            multiplier = int(unit_of_measure.get("multiplier", 0))
            signed = sampled.get("signedMeterValue")
            raw_value = signed.get("signedMeterData") if signed else None
            if number is not None and multiplier:
                number = _scaled(number, multiplier)
                if number is None and raw_value is None:
                    # Beyond what a float holds (the schema allows any integer multiplier): kept as text.
                    raw_value = f"{raw}e{multiplier}"
        else:
            unit = sampled.get("unit")
            if sampled.get("format") == "SignedData" or number is None:
                number, raw_value = None, str(raw)
        values.append(
            SampledValue(
                value=number,
                measurand=sampled.get("measurand", ENERGY_REGISTER),
                phase=sampled.get("phase"),
                unit=unit,
                context=sampled.get("context"),
                location=sampled.get("location"),
                raw_value=raw_value,
            )
        )
    return MeterSample(parse_time(meter_value["timestamp"]), tuple(values))


def samples_from_wire(meter_values: Iterable[Mapping[str, Any]] | None, v201: bool) -> tuple[MeterSample, ...]:
    return tuple(sample_from_wire(mv, v201) for mv in meter_values or ())


async def heartbeat(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    """Heartbeat is the same in 1.6 and 2.0.1: note the station is alive, give it our time."""
    await ctx.service.heartbeat(ctx.station_id, ctx.now)
    return {"currentTime": format_time(ctx.now)}


def recorded(action: str, reply: Mapping[str, Any] | None = None, station_field: str | None = None) -> Handler:
    """A handler that keeps the message verbatim as a station event and answers ``reply``.

    ``station_field`` also copies the message's ``status`` onto the station (firmware, diagnostics).
    """
    answer = dict(reply or {})

    async def handle(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
        update = (station_field, p["status"]) if station_field else None
        await ctx.service.record_event(ctx.station_id, action, p, ctx.now, station_field=update)
        return dict(answer)

    return handle


def get_log_payload(command: GetLog, log_type: str) -> dict[str, Any]:
    """GetLog has the same shape in 2.0.1 and in the 1.6 security extension."""
    return optional(
        logType=log_type,
        requestId=command.request_id,
        retries=command.retries,
        retryInterval=command.retry_interval,
        log=optional(
            remoteLocation=command.location,
            oldestTimestamp=format_time(command.oldest) if command.oldest else None,
            latestTimestamp=format_time(command.latest) if command.latest else None,
        ),
    )
