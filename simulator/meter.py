"""Meter samples on the wire: 1.6 `MeterValue` and 2.0.1 `MeterValueType` dicts (snake_case for `ocpp`)."""

from __future__ import annotations

from typing import Any

from simulator.clock import format_ts
from simulator.model import MeterSample

__all__ = ["sample_to_v16", "sample_to_v201", "sampled_values"]

_PHASES = ("L1", "L2", "L3")


def sampled_values(sample: MeterSample) -> list[tuple[str, float, str, str | None, str]]:
    """(measurand, value, unit, phase, location) rows of a sample."""
    rows: list[tuple[str, float, str, str | None, str]] = [
        ("Energy.Active.Import.Register", round(sample.energy_wh, 1), "Wh", None, "Outlet"),
        ("Power.Active.Import", round(sample.power_w, 1), "W", None, "Outlet"),
    ]
    for i, phase in enumerate(_PHASES):
        current = sample.current_a if i < sample.phases else 0.0
        rows.append(("Current.Import", round(current, 2), "A", phase, "Outlet"))
    for phase in _PHASES:
        rows.append(("Voltage", round(sample.voltage, 1), "V", f"{phase}-N", "Outlet"))
    rows.append(("Current.Offered", round(sample.offered_a, 1), "A", None, "Outlet"))
    if sample.soc_percent is not None:
        rows.append(("SoC", round(sample.soc_percent, 1), "Percent", None, "EV"))
    return rows


def _num(value: float) -> str:
    """Decimal string without exponent or trailing zeros (1.6 sends values as strings)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def sample_to_v16(sample: MeterSample) -> dict[str, Any]:
    values = []
    for measurand, value, unit, phase, location in sampled_values(sample):
        item: dict[str, Any] = {
            "value": _num(value),
            "context": sample.context,
            "format": "Raw",
            "measurand": measurand,
            "location": location,
            "unit": unit,
        }
        if phase is not None:
            item["phase"] = phase
        values.append(item)
    return {"timestamp": format_ts(sample.timestamp), "sampled_value": values}


def sample_to_v201(sample: MeterSample) -> dict[str, Any]:
    values = []
    for measurand, value, unit, phase, location in sampled_values(sample):
        item: dict[str, Any] = {
            "value": value,
            "context": sample.context,
            "measurand": measurand,
            "location": location,
            "unit_of_measure": {"unit": unit},
        }
        if phase is not None:
            item["phase"] = phase
        values.append(item)
    return {"timestamp": format_ts(sample.timestamp), "sampled_value": values}
