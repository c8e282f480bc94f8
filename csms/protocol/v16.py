"""OCPP 1.6J adapter (with the security extension): wire payloads <-> service calls and commands.

Each handler turns a payload that already passed its JSON schema into one service call and builds the reply.
1.6 connector N is EVSE N with connector 1; connector 0 is the charge point itself.
"""

from __future__ import annotations

import json
from typing import Any

from csms.domain.charging import ChargingProfile, ChargingProfilePurpose
from csms.domain.commands import (
    CancelReservation,
    ChangeAvailability,
    ClearCache,
    ClearChargingProfile,
    Command,
    DataTransfer,
    GetCompositeSchedule,
    GetConfiguration,
    GetLocalListVersion,
    GetLog,
    RemoteStart,
    RemoteStop,
    ReserveNow,
    Reset,
    SendLocalList,
    SetChargingProfile,
    SetConfiguration,
    TriggerMessage,
    UnlockConnector,
    UpdateFirmware,
)
from csms.domain.stations import ConnectorState, ConnectorStatus, StationInfo
from csms.domain.tokens import IdTokenInfo
from csms.domain.transactions import TransactionStart, TransactionStop
from csms.errors import InvalidRequest
from csms.protocol.common import (
    CallContext,
    Handler,
    format_time,
    get_log_payload,
    heartbeat,
    optional,
    parse_time,
    recorded,
    sample_from_wire,
    samples_from_wire,
)

__all__ = ["HANDLERS", "encode_command"]

PROTOCOL = "ocpp1.6"


def _id_tag_info(info: IdTokenInfo) -> dict[str, Any]:
    return optional(
        status=info.status.value if info.status.value != "Unknown" else "Invalid",
        expiryDate=format_time(info.expiry) if info.expiry else None,
        parentIdTag=info.parent_id,
    )


async def boot_notification(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    info = StationInfo(
        vendor=p["chargePointVendor"],
        model=p["chargePointModel"],
        serial_number=p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber"),
        firmware_version=p.get("firmwareVersion"),
    )
    result = await ctx.service.boot(ctx.station_id, PROTOCOL, info, ctx.now)
    return {"status": result.status.value, "currentTime": format_time(ctx.now), "interval": result.interval}


async def status_notification(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    connector = p["connectorId"]
    state = ConnectorState(
        station_id=ctx.station_id,
        evse_id=connector,
        connector_id=1 if connector else 0,
        status=ConnectorStatus(p["status"]),
        error_code=p["errorCode"],
        timestamp=parse_time(p["timestamp"]) if "timestamp" in p else ctx.now,
        info=p.get("info"),
        vendor_error_code=p.get("vendorErrorCode"),
    )
    await ctx.service.connector_status(state, ctx.now)
    return {}


async def authorize(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    info = await ctx.service.authorize(ctx.station_id, p["idTag"], ctx.now)
    return {"idTagInfo": _id_tag_info(info)}


async def start_transaction(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    connector = p["connectorId"]
    start = TransactionStart(
        station_id=ctx.station_id,
        evse_id=connector,
        connector_id=1,
        id_token=p["idTag"],
        timestamp=parse_time(p["timestamp"]),
        meter_start_wh=float(p["meterStart"]),
        reservation_id=p.get("reservationId"),
    )
    reply = await ctx.service.start_transaction(start, ctx.now)
    assert reply.id_token_info is not None  # 1.6 StartTransaction always carries an idTag
    return {"transactionId": reply.transaction.id, "idTagInfo": _id_tag_info(reply.id_token_info)}


async def stop_transaction(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    stop = TransactionStop(
        timestamp=parse_time(p["timestamp"]),
        meter_stop_wh=float(p["meterStop"]),
        reason=p.get("reason", "Local"),
        id_token=p.get("idTag"),
        samples=samples_from_wire(p.get("transactionData"), v201=False),
    )
    transaction = await ctx.service.find_transaction(ctx.station_id, str(p["transactionId"]))
    if transaction is None:
        # A late stop for a transaction we never stored (or that predates this database) is still answered,
        # and kept verbatim so no billing data is lost.
        await ctx.service.record_event(ctx.station_id, "StopTransaction", p, ctx.now)
        info = await ctx.service.authorize(ctx.station_id, stop.id_token, ctx.now) if stop.id_token else None
    else:
        info = await ctx.service.stop_transaction(ctx.station_id, transaction, stop, ctx.now)
    return {"idTagInfo": _id_tag_info(info)} if info else {}


async def meter_values(ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    samples = tuple(sample_from_wire(mv, v201=False) for mv in p["meterValue"])
    transaction_id = p.get("transactionId")
    if transaction_id is not None:
        transaction = await ctx.service.find_transaction(ctx.station_id, str(transaction_id))
        transaction_id = transaction.id if transaction else None
    await ctx.service.meter_values(ctx.station_id, p["connectorId"], transaction_id, samples, ctx.now)
    return {}


HANDLERS: dict[str, Handler] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "Authorize": authorize,
    "StartTransaction": start_transaction,
    "StopTransaction": stop_transaction,
    "MeterValues": meter_values,
    # No vendor extension is installed: the data is kept, and the charger told its vendor id is unknown.
    "DataTransfer": recorded("DataTransfer", {"status": "UnknownVendorId"}),
    "DiagnosticsStatusNotification": recorded("DiagnosticsStatusNotification", station_field="diagnostics_status"),
    "FirmwareStatusNotification": recorded("FirmwareStatusNotification", station_field="firmware_status"),
    "SecurityEventNotification": recorded("SecurityEventNotification"),
    "LogStatusNotification": recorded("LogStatusNotification"),
    "SignedFirmwareStatusNotification": recorded("SignedFirmwareStatusNotification", station_field="firmware_status"),
    # No certificate authority is configured yet: the CSR is kept for an operator and refused.
    "SignCertificate": recorded("SignCertificate", {"status": "Rejected"}),
}


# -- operator commands ------------------------------------------------------------------------------------

_PURPOSE_16 = {
    ChargingProfilePurpose.STATION_MAX: "ChargePointMaxProfile",
    ChargingProfilePurpose.TX_DEFAULT: "TxDefaultProfile",
    ChargingProfilePurpose.TX: "TxProfile",
}


def profile_to_wire(profile: ChargingProfile) -> dict[str, Any]:
    schedule = profile.schedule
    return optional(
        chargingProfileId=profile.id,
        transactionId=int(profile.transaction_id) if profile.transaction_id else None,
        stackLevel=profile.stack_level,
        chargingProfilePurpose=_PURPOSE_16[profile.purpose],
        chargingProfileKind=profile.kind.value,
        recurrencyKind=profile.recurrency,
        validFrom=format_time(profile.valid_from) if profile.valid_from else None,
        validTo=format_time(profile.valid_to) if profile.valid_to else None,
        chargingSchedule=optional(
            duration=schedule.duration,
            startSchedule=format_time(schedule.start_schedule) if schedule.start_schedule else None,
            chargingRateUnit=schedule.unit.value,
            chargingSchedulePeriod=[
                optional(startPeriod=period.start_period, limit=period.limit, numberPhases=period.number_phases)
                for period in schedule.periods
            ],
            minChargingRate=schedule.min_charging_rate,
        ),
    )


def _trigger(command: TriggerMessage) -> tuple[str, dict[str, Any]]:
    # 1.6 core TriggerMessage knows six messages; the security extension's ExtendedTriggerMessage the rest.
    core = {
        "BootNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StatusNotification",
    }
    action = "TriggerMessage" if command.message in core else "ExtendedTriggerMessage"
    return action, optional(requestedMessage=command.message, connectorId=command.evse_id)


def _require_transaction_id(text: str) -> int:
    # isdigit() alone admits "²" and other Unicode digits int() refuses, and int() refuses more than 4,300 digits
    # (sys.get_int_max_str_digits): both were a ValueError, an HTTP 500. The schema then bounds the value.
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        # An operator's input, not a charger's: a 422 problem (CallRejected here escaped the API as a 500).
        raise InvalidRequest(f"1.6 transaction ids are integers of at most 19 digits: {text[:40]!r}")
    return int(text)


def encode_command(command: Command) -> tuple[str, dict[str, Any]] | None:
    """The 1.6 action and payload for ``command``, or None when 1.6 has no such command."""
    match command:
        case RemoteStart():
            return "RemoteStartTransaction", optional(
                idTag=command.id_token,
                connectorId=command.evse_id or None,
                chargingProfile=profile_to_wire(command.charging_profile) if command.charging_profile else None,
            )
        case RemoteStop():
            return "RemoteStopTransaction", {"transactionId": _require_transaction_id(command.transaction_id)}
        case Reset():
            return "Reset", {"type": "Hard" if command.hard else "Soft"}
        case UnlockConnector():
            return "UnlockConnector", {"connectorId": command.evse_id}
        case ChangeAvailability():
            kind = "Operative" if command.operative else "Inoperative"
            return "ChangeAvailability", {"connectorId": command.evse_id, "type": kind}
        case TriggerMessage():
            return _trigger(command)
        case GetConfiguration():
            return "GetConfiguration", optional(key=list(command.keys) or None)
        case SetConfiguration():
            return "ChangeConfiguration", {"key": command.key, "value": command.value}
        case ClearCache():
            return "ClearCache", {}
        case SendLocalList():
            entries = [
                optional(
                    idTag=entry.id_token,
                    idTagInfo=optional(
                        status=entry.status,
                        expiryDate=format_time(entry.expiry) if entry.expiry else None,
                        parentIdTag=entry.parent_id,
                    )
                    if entry.status
                    else None,
                )
                for entry in command.entries
            ]
            kind = "Full" if command.full else "Differential"
            return "SendLocalList", {
                "listVersion": command.version,
                "updateType": kind,
                "localAuthorizationList": entries,
            }
        case GetLocalListVersion():
            return "GetLocalListVersion", {}
        case SetChargingProfile():
            return "SetChargingProfile", {
                "connectorId": command.evse_id,
                "csChargingProfiles": profile_to_wire(command.profile),
            }
        case ClearChargingProfile():
            return "ClearChargingProfile", optional(
                id=command.profile_id,
                connectorId=command.evse_id,
                chargingProfilePurpose=_PURPOSE_16[command.purpose] if command.purpose else None,
                stackLevel=command.stack_level,
            )
        case GetCompositeSchedule():
            return "GetCompositeSchedule", optional(
                connectorId=command.evse_id,
                duration=command.duration,
                chargingRateUnit=command.unit.value if command.unit else None,
            )
        case ReserveNow():
            return "ReserveNow", optional(
                connectorId=command.evse_id or 0,
                expiryDate=format_time(command.expiry),
                idTag=command.id_token,
                parentIdTag=command.parent_id,
                reservationId=command.reservation_id,
            )
        case CancelReservation():
            return "CancelReservation", {"reservationId": command.reservation_id}
        case UpdateFirmware() if command.signing_certificate:
            return "SignedUpdateFirmware", optional(
                requestId=command.request_id,
                retries=command.retries,
                retryInterval=command.retry_interval,
                firmware={
                    "location": command.location,
                    "retrieveDateTime": format_time(command.retrieve_at),
                    "signingCertificate": command.signing_certificate,
                    "signature": command.signature or "",
                },
            )
        case UpdateFirmware():
            return "UpdateFirmware", optional(
                location=command.location,
                retrieveDate=format_time(command.retrieve_at),
                retries=command.retries,
                retryInterval=command.retry_interval,
            )
        case GetLog() if command.log_type is None:
            return "GetDiagnostics", optional(
                location=command.location,
                retries=command.retries,
                retryInterval=command.retry_interval,
                startTime=format_time(command.oldest) if command.oldest else None,
                stopTime=format_time(command.latest) if command.latest else None,
            )
        case GetLog(log_type=str() as log_type):
            return "GetLog", get_log_payload(command, log_type)
        case DataTransfer():
            # 1.6 carries data as text: structured data is sent as its JSON.
            data = command.data if command.data is None or isinstance(command.data, str) else json.dumps(command.data)
            return "DataTransfer", optional(vendorId=command.vendor_id, messageId=command.message_id, data=data)
    return None
