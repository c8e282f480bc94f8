"""What each connector is: its plug (IEC 62196 and friends), the power it can deliver, and whether it can be booked.

Operators set a :class:`ConnectorSpec` per connector; where they have not, :func:`default_spec` derives one from the
station's wiring (hardware maximum per phase x phases x the node's voltage) with the plug unknown. Pure values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ConnectorKey", "ConnectorSpec", "ConnectorType", "default_spec", "resolve_spec", "wired_power_w"]

# (station id, EVSE id, connector id). OCPP 1.6 connectors are EVSE n, connector 1.
ConnectorKey = tuple[str, int, int]


class ConnectorType(StrEnum):
    """Plug and socket types by their common (IEC 62196 / IEC 60309 / national standard) names."""

    TYPE1 = "Type1"  # IEC 62196-2 type 1 (SAE J1772), AC
    TYPE2 = "Type2"  # IEC 62196-2 type 2 (Mennekes), AC
    TYPE3 = "Type3"  # IEC 62196-2 type 3 (Scame), AC
    CCS1 = "CCS1"  # IEC 62196-3 combo 1, DC
    CCS2 = "CCS2"  # IEC 62196-3 combo 2, DC
    CHADEMO = "CHAdeMO"  # IEC 62196-3 configuration AA, DC
    GBT_AC = "GBT-AC"  # GB/T 20234.2
    GBT_DC = "GBT-DC"  # GB/T 20234.3
    TESLA = "Tesla"  # NACS / SAE J3400
    SCHUKO = "Schuko"  # CEE 7/4 household socket
    CEE_1P = "IEC60309-1P"  # blue camping socket
    CEE_3P = "IEC60309-3P"  # red industrial socket
    UNKNOWN = "Unknown"

    @property
    def ocpp201(self) -> str | None:
        """The OCPP 2.0.1 ``ConnectorEnumType`` for ReserveNow's connectorType; None when it has none."""
        return _OCPP201.get(self)

    @property
    def is_dc(self) -> bool:
        return self in (ConnectorType.CCS1, ConnectorType.CCS2, ConnectorType.CHADEMO, ConnectorType.GBT_DC)


_OCPP201: dict[ConnectorType, str] = {
    ConnectorType.TYPE1: "cType1",
    ConnectorType.TYPE2: "sType2",
    ConnectorType.TYPE3: "sType3",
    ConnectorType.CCS1: "cCCS1",
    ConnectorType.CCS2: "cCCS2",
    ConnectorType.CHADEMO: "cG105",
    ConnectorType.TESLA: "cTesla",
    ConnectorType.SCHUKO: "sCEE-7-7",
    ConnectorType.CEE_1P: "s309-1P-16A",
    ConnectorType.CEE_3P: "s309-3P-16A",
}


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """One connector's plug, power and bookability.

    ``max_power_w`` is None when nobody set it and the station has no wiring to derive it from. ``configured`` says
    whether an operator set this spec (False: every value is a default).
    """

    station_id: str
    evse_id: int
    connector_id: int
    connector_type: ConnectorType = ConnectorType.UNKNOWN
    max_power_w: float | None = None
    bookable: bool = True
    configured: bool = False

    @property
    def key(self) -> ConnectorKey:
        return (self.station_id, self.evse_id, self.connector_id)


def wired_power_w(max_current_a: float, phases: int, voltage_v: float) -> float:
    """What an AC EVSE can deliver: hardware maximum per phase x phases x phase-to-neutral voltage."""
    return max_current_a * phases * voltage_v


def default_spec(key: ConnectorKey, wired_w: float | None) -> ConnectorSpec:
    """The spec of a connector nobody configured: plug unknown, bookable, the power its station's wiring allows."""
    station_id, evse_id, connector_id = key
    return ConnectorSpec(station_id, evse_id, connector_id, ConnectorType.UNKNOWN, wired_w, True, False)


def resolve_spec(stored: ConnectorSpec | None, key: ConnectorKey, wired_w: float | None) -> ConnectorSpec:
    """The spec in force: what an operator stored, with a power left unset taken from the wiring."""
    if stored is None:
        return default_spec(key, wired_w)
    if stored.max_power_w is None and wired_w is not None:
        return ConnectorSpec(*stored.key, stored.connector_type, wired_w, stored.bookable, stored.configured)
    return stored
