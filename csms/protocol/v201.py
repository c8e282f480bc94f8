"""OCPP 2.0.1 adapter: wire payloads <-> service calls and commands."""

from __future__ import annotations

from typing import Any

from csms.domain.charging import ChargingProfile
from csms.domain.commands import (
    CancelReservation,
    ChangeAvailability,
    ClearCache,
    ClearChargingProfile,
    Command,
    DataTransfer,
    GetBaseReport,
    GetChargingProfiles,
    GetCompositeSchedule,
    GetLocalListVersion,
    GetLog,
    GetVariables,
    RemoteStart,
    RemoteStop,
    ReserveNow,
    Reset,
    SendLocalList,
    SetChargingProfile,
    SetVariables,
    TriggerMessage,
    UnlockConnector,
    UpdateFirmware,
    VariableRef,
)
from csms.domain.ev_charging import ChargingNeeds
from csms.domain.metering import energy_wh
from csms.domain.stations import ConnectorState, ConnectorStatus, StationInfo
from csms.domain.tokens import AuthorizationStatus, IdTokenInfo
from csms.domain.transactions import TransactionStart, TransactionStop
from csms.protocol.common import (
    CallContext,
    Handler,
    format_time,
    get_log_payload,
    heartbeat,
    optional,
    parse_time,
    recorded,
    samples_from_wire,
)
from csms.storage.sql import VariableRow

__all__ = ["HANDLERS", "encode_command"]

PROTOCOL = "ocpp2.0.1"


def _id_token_info(info: IdTokenInfo) -> dict[str, Any]:
    status = "Unknown" if info.status is AuthorizationStatus.UNKNOWN else info.status.value
    return optional(
        status=status,
        cacheExpiryDateTime=format_time(info.expiry) if info.expiry else None,
        groupIdToken={"idToken": info.parent_id, "type": "Central"} if info.parent_id else None,
    )


async def boot_notification(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    station = p["chargingStation"]
    info = StationInfo(
        vendor=station["vendorName"],
        model=station["model"],
        serial_number=station.get("serialNumber"),
        firmware_version=station.get("firmwareVersion"),
        boot_reason=p["reason"],
    )
    result = await ctx.service.boot(ctx.station_id, PROTOCOL, info, ctx.now)
    return {"currentTime": format_time(ctx.now), "interval": result.interval, "status": result.status.value}


async def status_notification(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    state = ConnectorState(
        station_id=ctx.station_id,
        evse_id=p["evseId"],
        connector_id=p["connectorId"],
        status=ConnectorStatus(p["connectorStatus"]),
        error_code=None,
        timestamp=parse_time(p["timestamp"]),
    )
    await ctx.service.connector_status(state, ctx.now)
    return {}


async def authorize(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    info = await ctx.service.authorize(ctx.station_id, p["idToken"]["idToken"], ctx.now)
    return {"idTokenInfo": _id_token_info(info)}


async def transaction_event(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    tx_info = p["transactionInfo"]
    samples = samples_from_wire(p.get("meterValue"), v201=True)
    evse = p.get("evse") or {}
    id_token = p.get("idToken", {}).get("idToken")
    start = TransactionStart(
        station_id=ctx.station_id,
        evse_id=evse.get("id", 0),
        connector_id=evse.get("connectorId", 1),
        id_token=id_token,
        timestamp=parse_time(p["timestamp"]),
        meter_start_wh=next((wh for wh in map(energy_wh, samples) if wh is not None), None),
        charger_tx_id=tx_info["transactionId"],
        reservation_id=p.get("reservationId"),
        offline=p.get("offline", False),
        seq_no=p["seqNo"],
        trigger=p["triggerReason"],
        charging_state=tx_info.get("chargingState"),
    )
    event_type = p["eventType"]
    if event_type == "Started":
        reply = await ctx.service.start_transaction(start, ctx.now, samples)
        info = reply.id_token_info
    elif event_type == "Updated":
        info = (await ctx.service.update_transaction(start, samples, ctx.now)).id_token_info
    else:
        stop = TransactionStop(
            timestamp=start.timestamp,
            meter_stop_wh=None,
            reason=tx_info.get("stoppedReason", "Local"),
            id_token=id_token,
            samples=samples,
            seq_no=start.seq_no,
            offline=start.offline,
        )
        transaction = await ctx.service.find_transaction(ctx.station_id, start.charger_tx_id or "")
        if transaction is None:
            info = (await ctx.service.end_started_transaction(start, stop, ctx.now)).id_token_info
        else:
            info = await ctx.service.stop_transaction(ctx.station_id, transaction, stop, ctx.now)
    # idTokenInfo is only expected when the event carried an idToken (E01.FR.?? / E07).
    return {"idTokenInfo": _id_token_info(info)} if info and id_token else {}


async def meter_values(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    samples = samples_from_wire(p["meterValue"], v201=True)
    await ctx.service.meter_values(ctx.station_id, p["evseId"], None, samples, ctx.now)
    return {}


def _report_rows(p: dict[str, Any]) -> list[VariableRow]:
    rows: list[VariableRow] = []
    for item in p.get("reportData", ()):
        component, variable = item["component"], item["variable"]
        characteristics = item.get("variableCharacteristics", {})
        for attribute in item["variableAttribute"]:
            rows.append(
                {
                    "component": component["name"],
                    "component_instance": component.get("instance"),
                    "evse_id": component.get("evse", {}).get("id"),
                    "connector_id": component.get("evse", {}).get("connectorId"),
                    "variable": variable["name"],
                    "variable_instance": variable.get("instance"),
                    "attribute_type": attribute.get("type", "Actual"),
                    "value": attribute.get("value"),
                    "mutability": attribute.get("mutability", characteristics.get("mutability")),
                }
            )
    return rows


async def notify_report(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    await ctx.service.report_variables(ctx.station_id, p, _report_rows(p), ctx.now)
    return {}


async def reservation_status_update(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    await ctx.service.reservation_status(ctx.station_id, p["reservationId"], p["reservationUpdateStatus"], p, ctx.now)
    return {}


async def notify_ev_charging_needs(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    """K17: Accepted promises a charging schedule (smart charging manages the station), Rejected that none follows."""
    needs = p["chargingNeeds"]
    ac = needs.get("acChargingParameters") or {}
    dc = needs.get("dcChargingParameters") or {}
    departure = needs.get("departureTime")
    charging_needs = ChargingNeeds(
        energy_wh=ac.get("energyAmount", dc.get("energyAmount")),
        departure=parse_time(departure) if departure else None,
        # DC currents are the battery's, not per AC phase: only AC limits bound a phase current.
        max_current_a=ac.get("evMaxCurrent"),
        min_current_a=ac.get("evMinCurrent"),
    )
    scheduled = await ctx.service.ev_charging_needs(ctx.station_id, p["evseId"], charging_needs, p, ctx.now)
    return {"status": "Accepted" if scheduled else "Rejected"}


HANDLERS: dict[str, Handler] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "Authorize": authorize,
    "TransactionEvent": transaction_event,
    "MeterValues": meter_values,
    "NotifyEvent": recorded("NotifyEvent"),
    "NotifyReport": notify_report,
    "SecurityEventNotification": recorded("SecurityEventNotification"),
    "NotifyChargingLimit": recorded("NotifyChargingLimit"),
    "ClearedChargingLimit": recorded("ClearedChargingLimit"),
    "NotifyEVChargingNeeds": notify_ev_charging_needs,
    "ReportChargingProfiles": recorded("ReportChargingProfiles"),
    "ReservationStatusUpdate": reservation_status_update,
    "FirmwareStatusNotification": recorded("FirmwareStatusNotification", station_field="firmware_status"),
    "LogStatusNotification": recorded("LogStatusNotification"),
    "PublishFirmwareStatusNotification": recorded("PublishFirmwareStatusNotification"),
    "NotifyCustomerInformation": recorded("NotifyCustomerInformation"),
    "NotifyDisplayMessages": recorded("NotifyDisplayMessages"),
    "NotifyMonitoringReport": recorded("NotifyMonitoringReport"),
    "DataTransfer": recorded("DataTransfer", {"status": "UnknownVendorId"}),
    # No PKI is configured yet: certificate requests are kept for an operator and refused.
    "SignCertificate": recorded("SignCertificate", {"status": "Rejected"}),
    "GetCertificateStatus": recorded("GetCertificateStatus", {"status": "Failed"}),
    "Get15118EVCertificate": recorded("Get15118EVCertificate", {"status": "Failed", "exiResponse": ""}),
}


# -- operator commands ------------------------------------------------------------------------------------


def profile_to_wire(profile: ChargingProfile) -> dict[str, Any]:
    schedule = profile.schedule
    return optional(
        id=profile.id,
        stackLevel=profile.stack_level,
        chargingProfilePurpose=profile.purpose.value,
        chargingProfileKind=profile.kind.value,
        recurrencyKind=profile.recurrency,
        validFrom=format_time(profile.valid_from) if profile.valid_from else None,
        validTo=format_time(profile.valid_to) if profile.valid_to else None,
        transactionId=profile.transaction_id,
        chargingSchedule=[
            optional(
                id=schedule.id,
                startSchedule=format_time(schedule.start_schedule) if schedule.start_schedule else None,
                duration=schedule.duration,
                chargingRateUnit=schedule.unit.value,
                chargingSchedulePeriod=[
                    optional(startPeriod=period.start_period, limit=period.limit, numberPhases=period.number_phases)
                    for period in schedule.periods
                ],
                minChargingRate=schedule.min_charging_rate,
            )
        ],
    )


def _variable(ref: VariableRef) -> dict[str, Any]:
    evse = optional(id=ref.evse_id, connectorId=ref.connector_id) if ref.evse_id is not None else None
    return {
        "component": optional(name=ref.component, instance=ref.component_instance, evse=evse),
        "variable": optional(name=ref.variable, instance=ref.variable_instance),
    }


def _evse(evse_id: int | None, connector_id: int | None = None) -> dict[str, Any] | None:
    return optional(id=evse_id, connectorId=connector_id) if evse_id else None


def encode_command(command: Command) -> tuple[str, dict[str, Any]] | None:
    """The 2.0.1 action and payload for ``command``, or None when 2.0.1 has no such command."""
    match command:
        case RemoteStart():
            return "RequestStartTransaction", optional(
                idToken={"idToken": command.id_token, "type": "Central"},
                remoteStartId=command.remote_start_id,
                evseId=command.evse_id or None,
                chargingProfile=profile_to_wire(command.charging_profile) if command.charging_profile else None,
            )
        case RemoteStop():
            return "RequestStopTransaction", {"transactionId": command.transaction_id}
        case Reset():
            return "Reset", optional(type="Immediate" if command.hard else "OnIdle", evseId=command.evse_id)
        case UnlockConnector():
            return "UnlockConnector", {"evseId": command.evse_id, "connectorId": command.connector_id}
        case ChangeAvailability():
            return "ChangeAvailability", optional(
                operationalStatus="Operative" if command.operative else "Inoperative",
                evse=_evse(command.evse_id, command.connector_id),
            )
        case TriggerMessage():
            return "TriggerMessage", optional(
                requestedMessage=command.message, evse=_evse(command.evse_id, command.connector_id)
            )
        case GetVariables():
            return "GetVariables", {
                "getVariableData": [
                    optional(attributeType=ref.attribute_type, **_variable(ref)) for ref in command.variables
                ]
            }
        case SetVariables():
            return "SetVariables", {
                "setVariableData": [
                    optional(attributeType=ref.attribute_type, attributeValue=ref.value or "", **_variable(ref))
                    for ref in command.variables
                ]
            }
        case GetBaseReport():
            return "GetBaseReport", {"requestId": command.request_id, "reportBase": command.report_base}
        case ClearCache():
            return "ClearCache", {}
        case SendLocalList():
            entries = [
                optional(
                    idToken={"idToken": entry.id_token, "type": entry.token_type},
                    idTokenInfo=optional(
                        status=entry.status,
                        cacheExpiryDateTime=format_time(entry.expiry) if entry.expiry else None,
                        groupIdToken={"idToken": entry.parent_id, "type": "Central"} if entry.parent_id else None,
                    )
                    if entry.status
                    else None,
                )
                for entry in command.entries
            ]
            kind = "Full" if command.full else "Differential"
            return "SendLocalList", optional(
                versionNumber=command.version, updateType=kind, localAuthorizationList=entries or None
            )
        case GetLocalListVersion():
            return "GetLocalListVersion", {}
        case SetChargingProfile():
            return "SetChargingProfile", {
                "evseId": command.evse_id,
                "chargingProfile": profile_to_wire(command.profile),
            }
        case ClearChargingProfile():
            criteria = optional(
                evseId=command.evse_id,
                chargingProfilePurpose=command.purpose.value if command.purpose else None,
                stackLevel=command.stack_level,
            )
            return "ClearChargingProfile", optional(
                chargingProfileId=command.profile_id, chargingProfileCriteria=criteria or None
            )
        case GetChargingProfiles():
            criteria = optional(
                chargingProfilePurpose=command.purpose.value if command.purpose else None,
                stackLevel=command.stack_level,
                chargingProfileId=list(command.profile_ids) or None,
            )
            return "GetChargingProfiles", optional(
                requestId=command.request_id, evseId=command.evse_id, chargingProfile=criteria
            )
        case GetCompositeSchedule():
            return "GetCompositeSchedule", optional(
                duration=command.duration,
                evseId=command.evse_id,
                chargingRateUnit=command.unit.value if command.unit else None,
            )
        case ReserveNow():
            return "ReserveNow", optional(
                id=command.reservation_id,
                expiryDateTime=format_time(command.expiry),
                idToken={"idToken": command.id_token, "type": "Central"},
                evseId=command.evse_id or None,
                connectorType=command.connector_type,
                groupIdToken={"idToken": command.parent_id, "type": "Central"} if command.parent_id else None,
            )
        case CancelReservation():
            return "CancelReservation", {"reservationId": command.reservation_id}
        case UpdateFirmware():
            return "UpdateFirmware", optional(
                requestId=command.request_id,
                retries=command.retries,
                retryInterval=command.retry_interval,
                firmware=optional(
                    location=command.location,
                    retrieveDateTime=format_time(command.retrieve_at),
                    signingCertificate=command.signing_certificate,
                    signature=command.signature,
                ),
            )
        case GetLog():
            return "GetLog", get_log_payload(command, command.log_type or "DiagnosticsLog")
        case DataTransfer():
            return "DataTransfer", optional(vendorId=command.vendor_id, messageId=command.message_id, data=command.data)
    return None
