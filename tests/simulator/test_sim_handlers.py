"""Every CSMS-initiated action of both versions has a handler on the simulated station."""

from __future__ import annotations

from typing import Any

from ocpp.routing import create_route_map

from simulator.clock import SimClock
from simulator.station import SimStation

CSMS_TO_STATION_16 = {
    "CancelReservation", "CertificateSigned", "ChangeAvailability", "ChangeConfiguration", "ClearCache",
    "ClearChargingProfile", "DataTransfer", "DeleteCertificate", "ExtendedTriggerMessage", "GetCompositeSchedule",
    "GetConfiguration", "GetDiagnostics", "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog",
    "InstallCertificate", "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList",
    "SetChargingProfile", "SignedUpdateFirmware", "TriggerMessage", "UnlockConnector", "UpdateFirmware",
}  # fmt: skip
CSMS_TO_STATION_201 = {
    "CancelReservation", "CertificateSigned", "ChangeAvailability", "ClearCache", "ClearChargingProfile",
    "ClearDisplayMessage", "ClearVariableMonitoring", "CostUpdated", "CustomerInformation", "DataTransfer",
    "DeleteCertificate", "GetBaseReport", "GetChargingProfiles", "GetCompositeSchedule", "GetDisplayMessages",
    "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog", "GetMonitoringReport", "GetReport",
    "GetTransactionStatus", "GetVariables", "InstallCertificate", "PublishFirmware", "RequestStartTransaction",
    "RequestStopTransaction", "ReserveNow", "Reset", "SendLocalList", "SetChargingProfile", "SetDisplayMessage",
    "SetMonitoringBase", "SetMonitoringLevel", "SetNetworkProfile", "SetVariableMonitoring", "SetVariables",
    "TriggerMessage", "UnlockConnector", "UnpublishFirmware", "UpdateFirmware",
}  # fmt: skip


def _routes(protocol: str) -> set[str]:
    station = SimStation("ROUTES", "ws://127.0.0.1:1/ocpp", protocol, 1, SimClock())
    cp: Any = station.handler.create_charge_point(None)  # type: ignore[arg-type]  # no socket needed
    return {action for action, hooks in create_route_map(cp).items() if "_on_action" in hooks}


async def test_v16_handles_every_csms_action() -> None:
    """The 1.6 station (incl. the security extension) routes every CSMS-to-station action."""
    assert _routes("ocpp1.6") >= CSMS_TO_STATION_16


async def test_v201_handles_every_csms_action() -> None:
    """The 2.0.1 station routes every CSMS-to-station action of the 2.0.1 spec."""
    assert _routes("ocpp2.0.1") >= CSMS_TO_STATION_201
