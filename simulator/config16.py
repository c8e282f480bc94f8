"""OCPP 1.6 configuration key store (GetConfiguration / ChangeConfiguration)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from simulator.model import Settings

__all__ = ["ConfigStore16", "KeyKind", "KeySpec"]


class KeyKind(StrEnum):
    INT = "int"
    BOOL = "bool"
    STR = "str"
    CSL = "csl"


@dataclass(frozen=True)
class KeySpec:
    default: str
    readonly: bool = False
    kind: KeyKind = KeyKind.STR
    # AuthorizationKey is write-only per the 1.6 security whitepaper: never reported back.
    write_only: bool = False


_MEASURANDS = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,SoC"

_KEYS: dict[str, KeySpec] = {
    "AllowOfflineTxForUnknownId": KeySpec("true", kind=KeyKind.BOOL),
    "AuthorizationCacheEnabled": KeySpec("true", kind=KeyKind.BOOL),
    "AuthorizationKey": KeySpec("", kind=KeyKind.STR, write_only=True),
    "AuthorizeRemoteTxRequests": KeySpec("false", kind=KeyKind.BOOL),
    "ChargeProfileMaxStackLevel": KeySpec("8", readonly=True, kind=KeyKind.INT),
    "ChargingScheduleAllowedChargingRateUnit": KeySpec("Current,Power", readonly=True, kind=KeyKind.CSL),
    "ChargingScheduleMaxPeriods": KeySpec("24", readonly=True, kind=KeyKind.INT),
    "ClockAlignedDataInterval": KeySpec("0", kind=KeyKind.INT),
    "ConnectionTimeOut": KeySpec("120", kind=KeyKind.INT),
    "ConnectorPhaseRotation": KeySpec("0.RST", kind=KeyKind.CSL),
    "GetConfigurationMaxKeys": KeySpec("64", readonly=True, kind=KeyKind.INT),
    "HeartbeatInterval": KeySpec("300", kind=KeyKind.INT),
    "LocalAuthListEnabled": KeySpec("true", kind=KeyKind.BOOL),
    "LocalAuthListMaxLength": KeySpec("1000", readonly=True, kind=KeyKind.INT),
    "LocalAuthorizeOffline": KeySpec("true", kind=KeyKind.BOOL),
    "LocalPreAuthorize": KeySpec("false", kind=KeyKind.BOOL),
    "MaxChargingProfilesInstalled": KeySpec("16", readonly=True, kind=KeyKind.INT),
    "MeterValueSampleInterval": KeySpec("60", kind=KeyKind.INT),
    "MeterValuesAlignedData": KeySpec("Energy.Active.Import.Register", kind=KeyKind.CSL),
    "MeterValuesSampledData": KeySpec(_MEASURANDS, kind=KeyKind.CSL),
    "NumberOfConnectors": KeySpec("1", readonly=True, kind=KeyKind.INT),
    "ReserveConnectorZeroSupported": KeySpec("false", readonly=True, kind=KeyKind.BOOL),
    "ResetRetries": KeySpec("1", kind=KeyKind.INT),
    "SecurityProfile": KeySpec("0", kind=KeyKind.INT),
    "SendLocalListMaxLength": KeySpec("100", readonly=True, kind=KeyKind.INT),
    "StopTransactionOnEVSideDisconnect": KeySpec("true", kind=KeyKind.BOOL),
    "StopTransactionOnInvalidId": KeySpec("true", kind=KeyKind.BOOL),
    "StopTxnAlignedData": KeySpec("", kind=KeyKind.CSL),
    "StopTxnSampledData": KeySpec("Energy.Active.Import.Register", kind=KeyKind.CSL),
    "SupportedFeatureProfiles": KeySpec(
        "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
        readonly=True,
        kind=KeyKind.CSL,
    ),
    "TransactionMessageAttempts": KeySpec("3", kind=KeyKind.INT),
    "TransactionMessageRetryInterval": KeySpec("10", kind=KeyKind.INT),
    "UnlockConnectorOnEVSideDisconnect": KeySpec("true", kind=KeyKind.BOOL),
    "WebSocketPingInterval": KeySpec("0", kind=KeyKind.INT),
}


def _valid(spec: KeySpec, value: str) -> bool:
    if spec.kind is KeyKind.INT:
        return value.strip().isdigit()
    if spec.kind is KeyKind.BOOL:
        return value.lower() in ("true", "false")
    return True


class ConfigStore16:
    """Key/value configuration with read-only keys; unknown keys are reported as such."""

    def __init__(self, connectors: int, overrides: Mapping[str, str] | None = None) -> None:
        self._values = {key: spec.default for key, spec in _KEYS.items()}
        self._values["NumberOfConnectors"] = str(connectors)
        self._values.update(overrides or {})
        self._settings: Settings | None = None  # read on every physics tick: built once per change

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def get_int(self, key: str) -> int:
        return int(self._values[key])

    def get_bool(self, key: str) -> bool:
        return self._values[key].lower() == "true"

    def listing(self, keys: list[str] | None) -> tuple[list[dict[str, Any]], list[str]]:
        """(configurationKey entries, unknownKey names) for GetConfiguration."""
        wanted = keys if keys else [k for k, s in _KEYS.items() if not s.write_only]
        known: list[dict[str, Any]] = []
        unknown: list[str] = []
        for key in wanted:
            spec = _KEYS.get(key)
            if spec is None:
                unknown.append(key)
                continue
            entry: dict[str, Any] = {"key": key, "readonly": spec.readonly}
            if not spec.write_only:
                entry["value"] = self._values[key]
            known.append(entry)
        return known, unknown

    def change(self, key: str, value: str) -> str:
        """Apply ChangeConfiguration; returns the 1.6 ConfigurationStatus."""
        spec = _KEYS.get(key)
        if spec is None:
            return "NotSupported"
        if spec.readonly or not _valid(spec, value):
            return "Rejected"
        if key == "AuthorizationKey" and not 16 <= len(value) <= 40:
            return "Rejected"
        if key in ("HeartbeatInterval", "MeterValueSampleInterval") and int(value) <= 0:
            return "Rejected"
        self._values[key] = value.strip() if spec.kind is KeyKind.INT else value
        self._settings = None
        return "Accepted"

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self._read_settings()
        return self._settings

    def _read_settings(self) -> Settings:
        key = self._values.get("AuthorizationKey") or ""
        return Settings(
            heartbeat_interval_s=self.get_int("HeartbeatInterval"),
            meter_interval_s=self.get_int("MeterValueSampleInterval"),
            connection_timeout_s=self.get_int("ConnectionTimeOut"),
            authorize_remote_start=self.get_bool("AuthorizeRemoteTxRequests"),
            local_authorize_offline=self.get_bool("LocalAuthorizeOffline"),
            allow_offline_unknown=self.get_bool("AllowOfflineTxForUnknownId"),
            auth_cache_enabled=self.get_bool("AuthorizationCacheEnabled"),
            local_list_enabled=self.get_bool("LocalAuthListEnabled"),
            tx_message_attempts=self.get_int("TransactionMessageAttempts"),
            tx_message_retry_s=self.get_int("TransactionMessageRetryInterval"),
            max_stack_level=self.get_int("ChargeProfileMaxStackLevel"),
            max_schedule_periods=self.get_int("ChargingScheduleMaxPeriods"),
            max_profiles=self.get_int("MaxChargingProfilesInstalled"),
            basic_auth_password=key or None,
        )
