"""Meter samples exactly as chargers report them, with every attribute kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["MeterSample", "SampledValue", "energy_wh"]

ENERGY_REGISTER = "Energy.Active.Import.Register"


@dataclass(frozen=True, slots=True)
class SampledValue:
    value: float | None  # None when the charger sent no plain number (signed data, garbage): see raw_value
    measurand: str = ENERGY_REGISTER
    phase: str | None = None
    unit: str | None = None
    context: str | None = None
    location: str | None = None
    raw_value: str | None = None  # 1.6 SignedData, 2.0.1 signedMeterValue, or an unparsable value, verbatim


@dataclass(frozen=True, slots=True)
class MeterSample:
    timestamp: datetime
    values: tuple[SampledValue, ...]


_ENERGY_SCALE = {None: 1.0, "Wh": 1.0, "kWh": 1000.0}


def energy_wh(sample: MeterSample) -> float | None:
    """The import energy register of a sample in Wh (whole-meter value, not per phase), if present."""
    for value in sample.values:
        if (
            value.value is not None
            and value.measurand == ENERGY_REGISTER
            and value.phase is None
            and value.unit in _ENERGY_SCALE
        ):
            return value.value * _ENERGY_SCALE[value.unit]
    return None
