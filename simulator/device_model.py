"""A small OCPP 2.0.1 device model: components with variables (GetVariables/SetVariables/reports)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from simulator.model import Settings

__all__ = ["DeviceModel", "Mutability", "VarKey", "Variable"]


class Mutability(StrEnum):
    READ_ONLY = "ReadOnly"
    WRITE_ONLY = "WriteOnly"
    READ_WRITE = "ReadWrite"


@dataclass(frozen=True)
class VarKey:
    component: str
    variable: str
    evse_id: int | None = None
    connector_id: int | None = None
    component_instance: str | None = None
    variable_instance: str | None = None


@dataclass
class Variable:
    value: str
    mutability: Mutability
    data_type: str
    unit: str | None = None
    values_list: tuple[str, ...] = field(default_factory=tuple)


_RO, _RW, _WO = Mutability.READ_ONLY, Mutability.READ_WRITE, Mutability.WRITE_ONLY
_MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Current.Offered",
    "Voltage",
    "SoC",
)
_TX_POINTS = (
    "ParkingBayOccupancy",
    "EVConnected",
    "Authorized",
    "DataSigned",
    "PowerPathClosed",
    "EnergyTransfer",
)


def _base(identity: str, vendor: str, model: str) -> dict[VarKey, Variable]:
    k, v = VarKey, Variable
    measurands = ",".join(_MEASURANDS)
    return {
        k("ChargingStation", "AvailabilityState"): v("Available", _RO, "OptionList"),
        k("ChargingStation", "Available"): v("true", _RO, "boolean"),
        k("ChargingStation", "Model"): v(model, _RO, "string"),
        k("ChargingStation", "VendorName"): v(vendor, _RO, "string"),
        k("ChargingStation", "SupplyPhases"): v("3", _RO, "integer"),
        k("OCPPCommCtrlr", "HeartbeatInterval"): v("300", _RW, "integer", "s"),
        k("OCPPCommCtrlr", "MessageTimeout", component_instance="Default"): v("30", _RO, "integer", "s"),
        k("OCPPCommCtrlr", "WebSocketPingInterval"): v("0", _RW, "integer", "s"),
        k("OCPPCommCtrlr", "OfflineThreshold"): v("60", _RW, "integer", "s"),
        k("OCPPCommCtrlr", "RetryBackOffWaitMinimum"): v("1", _RW, "integer", "s"),
        k("OCPPCommCtrlr", "RetryBackOffRandomRange"): v("5", _RW, "integer", "s"),
        k("OCPPCommCtrlr", "RetryBackOffRepeatTimes"): v("5", _RW, "integer"),
        k("OCPPCommCtrlr", "ResetRetries"): v("1", _RW, "integer"),
        k("OCPPCommCtrlr", "NetworkConfigurationPriority"): v("0", _RW, "SequenceList"),
        k("OCPPCommCtrlr", "MessageAttempts", component_instance="TransactionEvent"): v("3", _RW, "integer"),
        k("OCPPCommCtrlr", "MessageAttemptInterval", component_instance="TransactionEvent"): v(
            "10", _RW, "integer", "s"
        ),
        k("SecurityCtrlr", "BasicAuthPassword"): v("", _WO, "string"),  # passwordString is 2.1-only
        k("SecurityCtrlr", "Identity"): v(identity, _RO, "string"),
        k("SecurityCtrlr", "SecurityProfile"): v("1", _RO, "integer"),
        k("SecurityCtrlr", "OrganizationName"): v("SimOperator", _RW, "string"),
        k("AuthCtrlr", "Enabled"): v("true", _RW, "boolean"),
        k("AuthCtrlr", "AuthorizeRemoteStart"): v("false", _RW, "boolean"),
        k("AuthCtrlr", "LocalAuthorizeOffline"): v("true", _RW, "boolean"),
        k("AuthCtrlr", "LocalPreAuthorize"): v("false", _RW, "boolean"),
        k("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): v("true", _RW, "boolean"),
        k("AuthCacheCtrlr", "Enabled"): v("true", _RW, "boolean"),
        k("LocalAuthListCtrlr", "Enabled"): v("true", _RW, "boolean"),
        k("LocalAuthListCtrlr", "Entries"): v("0", _RO, "integer"),
        k("LocalAuthListCtrlr", "ItemsPerMessage"): v("100", _RO, "integer"),
        k("LocalAuthListCtrlr", "BytesPerMessage"): v("16000", _RO, "integer"),
        k("SampledDataCtrlr", "TxUpdatedInterval"): v("60", _RW, "integer", "s"),
        k("SampledDataCtrlr", "TxEndedInterval"): v("0", _RW, "integer", "s"),
        k("SampledDataCtrlr", "TxStartedMeasurands"): v(_MEASURANDS[0], _RW, "MemberList", None, _MEASURANDS),
        k("SampledDataCtrlr", "TxUpdatedMeasurands"): v(measurands, _RW, "MemberList", None, _MEASURANDS),
        k("SampledDataCtrlr", "TxEndedMeasurands"): v(_MEASURANDS[0], _RW, "MemberList", None, _MEASURANDS),
        k("AlignedDataCtrlr", "Interval"): v("0", _RW, "integer", "s"),
        k("AlignedDataCtrlr", "Measurands"): v(_MEASURANDS[0], _RW, "MemberList", None, _MEASURANDS),
        k("TxCtrlr", "EVConnectionTimeOut"): v("120", _RW, "integer", "s"),
        k("TxCtrlr", "StopTxOnEVSideDisconnect"): v("true", _RO, "boolean"),
        k("TxCtrlr", "StopTxOnInvalidId"): v("true", _RW, "boolean"),
        k("TxCtrlr", "TxStartPoint"): v("Authorized,EVConnected", _RW, "MemberList", None, _TX_POINTS),
        k("TxCtrlr", "TxStopPoint"): v("Authorized,EVConnected", _RW, "MemberList", None, _TX_POINTS),
        k("SmartChargingCtrlr", "Enabled"): v("true", _RW, "boolean"),
        k("SmartChargingCtrlr", "Entries", variable_instance="ChargingProfiles"): v("0", _RO, "integer"),
        k("SmartChargingCtrlr", "LimitChangeSignificance"): v("1.0", _RW, "decimal", "Percent"),
        k("SmartChargingCtrlr", "ProfileStackLevel"): v("8", _RO, "integer"),
        k("SmartChargingCtrlr", "PeriodsPerSchedule"): v("24", _RO, "integer"),
        k("SmartChargingCtrlr", "RateUnit"): v("A,W", _RO, "MemberList", None, ("A", "W")),
        k("SmartChargingCtrlr", "ExternalControlSignalsEnabled"): v("true", _RW, "boolean"),
        k("SmartChargingCtrlr", "NotifyChargingLimitWithSchedules"): v("false", _RW, "boolean"),
        k("SmartChargingCtrlr", "Phases3to1"): v("false", _RO, "boolean"),
        k("SmartChargingCtrlr", "MaxProfiles"): v("16", _RO, "integer"),
        k("ReservationCtrlr", "Enabled"): v("true", _RW, "boolean"),
        k("ReservationCtrlr", "NonEvseSpecific"): v("true", _RO, "boolean"),
        k("DeviceDataCtrlr", "ItemsPerMessage", variable_instance="GetReport"): v("10", _RO, "integer"),
        k("DeviceDataCtrlr", "ItemsPerMessage", variable_instance="GetVariables"): v("50", _RO, "integer"),
        k("DeviceDataCtrlr", "ItemsPerMessage", variable_instance="SetVariables"): v("50", _RO, "integer"),
        k("DeviceDataCtrlr", "BytesPerMessage", variable_instance="GetReport"): v("16000", _RO, "integer"),
        k("ClockCtrlr", "TimeSource"): v("Heartbeat", _RW, "SequenceList"),
    }


def _valid(var: Variable, value: str) -> bool:
    if var.data_type == "integer":
        return value.strip().lstrip("-").isdigit()
    if var.data_type == "decimal":
        try:
            float(value)
        except ValueError:
            return False
        return True
    if var.data_type == "boolean":
        return value.lower() in ("true", "false")
    if var.data_type == "OptionList" and var.values_list:
        return value in var.values_list
    if var.data_type == "MemberList" and var.values_list:
        return all(item in var.values_list for item in value.split(",") if item)
    return len(value) <= 1000


def _key_from_wire(component: Mapping[str, Any], variable: Mapping[str, Any]) -> VarKey:
    evse = component.get("evse") or {}
    return VarKey(
        component=str(component.get("name", "")),
        variable=str(variable.get("name", "")),
        evse_id=evse.get("id"),
        connector_id=evse.get("connector_id"),
        component_instance=component.get("instance"),
        variable_instance=variable.get("instance"),
    )


def _wire_component(key: VarKey) -> dict[str, Any]:
    comp: dict[str, Any] = {"name": key.component}
    if key.component_instance:
        comp["instance"] = key.component_instance
    if key.evse_id is not None:
        comp["evse"] = {"id": key.evse_id}
        if key.connector_id is not None:
            comp["evse"]["connector_id"] = key.connector_id
    return comp


def _wire_variable(key: VarKey) -> dict[str, Any]:
    var: dict[str, Any] = {"name": key.variable}
    if key.variable_instance:
        var["instance"] = key.variable_instance
    return var


class DeviceModel:
    """Variables of a 2.0.1 station; only the `Actual` attribute is supported."""

    def __init__(self, identity: str, evses: int, vendor: str, model: str) -> None:
        self._vars = _base(identity, vendor, model)
        for evse in range(1, evses + 1):
            self._vars[VarKey("EVSE", "AvailabilityState", evse)] = Variable("Available", _RO, "OptionList")
            self._vars[VarKey("EVSE", "Available", evse)] = Variable("true", _RO, "boolean")
            self._vars[VarKey("EVSE", "SupplyPhases", evse)] = Variable("3", _RO, "integer")
            self._vars[VarKey("Connector", "AvailabilityState", evse, 1)] = Variable("Available", _RO, "OptionList")
            self._vars[VarKey("Connector", "ConnectorType", evse, 1)] = Variable("cType2", _RO, "string")
        self._components = {(k.component, k.evse_id, k.connector_id, k.component_instance) for k in self._vars}
        self._settings: Settings | None = None  # read on every physics tick: built once per change

    def value(self, component: str, variable: str, **where: Any) -> str:
        return self._vars[VarKey(component, variable, **where)].value

    def set_internal(self, component: str, variable: str, value: str, **where: Any) -> None:
        """Update a value the station itself owns (counts, availability), bypassing mutability."""
        key = VarKey(component, variable, **where)
        if key in self._vars:
            self._vars[key].value = value
            self._settings = None

    def _lookup(self, key: VarKey) -> tuple[str | None, Variable | None]:
        comp = (key.component, key.evse_id, key.connector_id, key.component_instance)
        if comp not in self._components:
            return "UnknownComponent", None
        var = self._vars.get(key)
        if var is None:
            return "UnknownVariable", None
        return None, var

    def get(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """One GetVariableResult for one GetVariableData entry."""
        key = _key_from_wire(data.get("component", {}), data.get("variable", {}))
        result: dict[str, Any] = {"component": data.get("component"), "variable": data.get("variable")}
        attr = data.get("attribute_type") or "Actual"
        if data.get("attribute_type"):
            result["attribute_type"] = attr
        error, var = self._lookup(key)
        if error or var is None:
            result["attribute_status"] = error
        elif attr != "Actual":
            result["attribute_status"] = "NotSupportedAttributeType"
        elif var.mutability is Mutability.WRITE_ONLY:
            result["attribute_status"] = "Rejected"
        else:
            result["attribute_status"] = "Accepted"
            result["attribute_value"] = var.value
        return result

    def set(self, data: Mapping[str, Any]) -> tuple[dict[str, Any], VarKey | None]:
        """One SetVariableResult; the key is returned when a value was changed."""
        key = _key_from_wire(data.get("component", {}), data.get("variable", {}))
        value = str(data.get("attribute_value", ""))
        result: dict[str, Any] = {"component": data.get("component"), "variable": data.get("variable")}
        attr = data.get("attribute_type") or "Actual"
        if data.get("attribute_type"):
            result["attribute_type"] = attr
        error, var = self._lookup(key)
        changed: VarKey | None = None
        if error or var is None:
            result["attribute_status"] = error
        elif attr != "Actual":
            result["attribute_status"] = "NotSupportedAttributeType"
        elif var.mutability is Mutability.READ_ONLY or not _valid(var, value):
            result["attribute_status"] = "Rejected"
        elif key.variable == "BasicAuthPassword" and not 16 <= len(value) <= 40:
            result["attribute_status"] = "Rejected"
        elif var.data_type == "integer" and key.variable.endswith("Interval") and int(value) < 0:
            result["attribute_status"] = "Rejected"
        else:
            var.value = value
            self._settings = None
            result["attribute_status"] = "Accepted"
            changed = key
        return result, changed

    def report(self, base: str) -> list[dict[str, Any]]:
        """ReportData entries for GetBaseReport."""
        items: Iterable[tuple[VarKey, Variable]] = self._vars.items()
        if base == "ConfigurationInventory":
            items = [(k, v) for k, v in items if v.mutability is not Mutability.READ_ONLY]
        elif base == "SummaryInventory":
            items = [(k, v) for k, v in items if k.variable in ("AvailabilityState", "Available")]
        return [self._report_entry(k, v) for k, v in items]

    def report_for(self, component_variables: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """ReportData for GetReport's componentVariable filter (a missing variable = whole component)."""
        out = []
        for cv in component_variables:
            comp = cv.get("component", {})
            var = cv.get("variable")
            for key, value in self._vars.items():
                probe = _key_from_wire(comp, var or {"name": key.variable})
                if probe == key:
                    out.append(self._report_entry(key, value))
        return out

    @staticmethod
    def _report_entry(key: VarKey, var: Variable) -> dict[str, Any]:
        attribute: dict[str, Any] = {"type": "Actual", "mutability": var.mutability.value}
        if var.mutability is not Mutability.WRITE_ONLY:
            attribute["value"] = var.value
        characteristics: dict[str, Any] = {"data_type": var.data_type, "supports_monitoring": False}
        if var.unit:
            characteristics["unit"] = var.unit
        if var.values_list:
            characteristics["values_list"] = ",".join(var.values_list)
        return {
            "component": _wire_component(key),
            "variable": _wire_variable(key),
            "variable_attribute": [attribute],
            "variable_characteristics": characteristics,
        }

    def _int(self, component: str, variable: str, **where: Any) -> int:
        return int(self.value(component, variable, **where))

    def _bool(self, component: str, variable: str) -> bool:
        return self.value(component, variable).lower() == "true"

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self._read_settings()
        return self._settings

    def _read_settings(self) -> Settings:
        password = self.value("SecurityCtrlr", "BasicAuthPassword")
        return Settings(
            heartbeat_interval_s=self._int("OCPPCommCtrlr", "HeartbeatInterval"),
            meter_interval_s=self._int("SampledDataCtrlr", "TxUpdatedInterval"),
            connection_timeout_s=self._int("TxCtrlr", "EVConnectionTimeOut"),
            authorize_remote_start=self._bool("AuthCtrlr", "AuthorizeRemoteStart"),
            local_authorize_offline=self._bool("AuthCtrlr", "LocalAuthorizeOffline"),
            allow_offline_unknown=self._bool("AuthCtrlr", "OfflineTxForUnknownIdEnabled"),
            auth_cache_enabled=self._bool("AuthCacheCtrlr", "Enabled"),
            local_list_enabled=self._bool("LocalAuthListCtrlr", "Enabled"),
            tx_message_attempts=self._int("OCPPCommCtrlr", "MessageAttempts", component_instance="TransactionEvent"),
            tx_message_retry_s=self._int(
                "OCPPCommCtrlr", "MessageAttemptInterval", component_instance="TransactionEvent"
            ),
            max_stack_level=self._int("SmartChargingCtrlr", "ProfileStackLevel"),
            max_schedule_periods=self._int("SmartChargingCtrlr", "PeriodsPerSchedule"),
            max_profiles=self._int("SmartChargingCtrlr", "MaxProfiles"),
            basic_auth_password=password or None,
        )
