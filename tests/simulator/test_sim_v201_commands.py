"""CSMS-initiated OCPP 2.0.1 commands against a simulated station."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.v201 import call

from simulator.clock import format_ts
from simulator.ev import EVSpec
from simulator.model import ConnectorState
from simulator.v201 import V201Handler
from tests.simulator.conftest import StationFactory
from tests.simulator.fake_csms import FakeCsms
from tests.simulator.helpers import eventually

EV = EVSpec(capacity_kwh=50, max_current_a=16, phases=3)


def profile(pid: int, purpose: str, limit: float, *, tx_id: str | None = None, unit: str = "A") -> dict[str, Any]:
    prof: dict[str, Any] = {
        "id": pid,
        "stack_level": 1,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Relative" if purpose.startswith("Tx") else "Absolute",
        "charging_schedule": [
            {
                "id": 1,
                "charging_rate_unit": unit,
                "charging_schedule_period": [{"start_period": 0, "limit": limit}],
            }
        ],
    }
    if purpose == "ChargingStationMaxProfile":
        prof["charging_schedule"][0]["start_schedule"] = format_ts(datetime.now(UTC) - timedelta(minutes=1))
    if tx_id is not None:
        prof["transaction_id"] = tx_id
    return prof


def var(component: str, variable: str, **extra: Any) -> dict[str, Any]:
    return {"component": {"name": component}, "variable": {"name": variable}, **extra}


async def test_get_and_set_variables(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """GetVariables/SetVariables follow the device model: unknowns, read-only, write-only and types."""
    st = await make_station("CS201-DM", "ocpp2.0.1")
    res = await fake_csms.call(
        "CS201-DM",
        call.GetVariables(
            get_variable_data=[
                var("OCPPCommCtrlr", "HeartbeatInterval"),
                var("SecurityCtrlr", "BasicAuthPassword"),
                var("NoSuchCtrlr", "X"),
                var("TxCtrlr", "NoSuchVar"),
                var("OCPPCommCtrlr", "HeartbeatInterval", attribute_type="Target"),
            ]
        ),
    )
    statuses = [r["attribute_status"] for r in res.get_variable_result]
    assert statuses == ["Accepted", "Rejected", "UnknownComponent", "UnknownVariable", "NotSupportedAttributeType"]
    assert res.get_variable_result[0]["attribute_value"] == "300"

    res = await fake_csms.call(
        "CS201-DM",
        call.SetVariables(
            set_variable_data=[
                var("OCPPCommCtrlr", "HeartbeatInterval", attribute_value="5"),
                var("ChargingStation", "Model", attribute_value="X"),
                var("AuthCtrlr", "AuthorizeRemoteStart", attribute_value="maybe"),
                var("SecurityCtrlr", "BasicAuthPassword", attribute_value="0123456789abcdef0123"),
            ]
        ),
    )
    assert [r["attribute_status"] for r in res.set_variable_result] == ["Accepted", "Rejected", "Rejected", "Accepted"]
    assert st.handler.settings().basic_auth_password == "0123456789abcdef0123"
    beats = len(fake_csms.of("CS201-DM", "Heartbeat"))
    await fake_csms.wait_for("CS201-DM", "Heartbeat", count=beats + 2)


async def test_get_base_report_sends_notify_report_chunks(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """GetBaseReport is Accepted, then NotifyReport messages follow with seqNo 0.. and tbc on all but the last."""
    await make_station("CS201-REP", "ocpp2.0.1")
    res = await fake_csms.call("CS201-REP", call.GetBaseReport(request_id=42, report_base="FullInventory"))
    assert res.status == "Accepted"
    last = await fake_csms.wait_for("CS201-REP", "NotifyReport", lambda p: not p.get("tbc"))
    reports = fake_csms.of("CS201-REP", "NotifyReport")
    assert len(reports) > 1 and [p["seqNo"] for p in reports] == list(range(len(reports)))
    assert all(p["tbc"] for p in reports[:-1]) and last["requestId"] == 42
    names = {(d["component"]["name"], d["variable"]["name"]) for p in reports for d in p["reportData"]}
    assert ("SecurityCtrlr", "BasicAuthPassword") in names
    res = await fake_csms.call(
        "CS201-REP",
        call.GetReport(request_id=43, component_variable=[{"component": {"name": "NoSuchCtrlr"}}]),
    )
    assert res.status == "EmptyResultSet"


async def test_remote_start_tx_profile_and_stop(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """RequestStart starts (remoteStartId echoed); a TxProfile with the tx id lowers the draw; RequestStop ends it."""
    st = await make_station("CS201-RS", "ocpp2.0.1")
    await st.plug_in(1, EV)
    res = await fake_csms.call(
        "CS201-RS",
        call.RequestStartTransaction(id_token={"id_token": "APP", "type": "Central"}, remote_start_id=77, evse_id=1),
    )
    assert res.status == "Accepted"
    started = await fake_csms.wait_for("CS201-RS", "TransactionEvent", lambda p: p["eventType"] == "Started")
    assert started["triggerReason"] == "RemoteStart"
    assert started["transactionInfo"]["remoteStartId"] == 77
    assert started["idToken"]["type"] == "Central"
    tx_id = started["transactionInfo"]["transactionId"]
    await eventually(lambda: st.connector(1).current_a == 16)

    wrong = await fake_csms.call("CS201-RS", call.SetChargingProfile(1, profile(5, "TxProfile", 8, tx_id="nope")))
    assert wrong.status == "Rejected"
    ok = await fake_csms.call("CS201-RS", call.SetChargingProfile(1, profile(5, "TxProfile", 8, tx_id=tx_id)))
    assert ok.status == "Accepted"
    await eventually(lambda: st.connector(1).current_a == 8, what="8 A")
    await fake_csms.wait_for(
        "CS201-RS", "TransactionEvent", lambda p: p["transactionInfo"].get("chargingState") == "Charging"
    )
    comp = await fake_csms.call("CS201-RS", call.GetCompositeSchedule(duration=300, evse_id=1, charging_rate_unit="W"))
    assert comp.status == "Accepted"
    assert comp.schedule["charging_schedule_period"][0]["limit"] == 8 * 230 * 3

    got = await fake_csms.call("CS201-RS", call.GetChargingProfiles(request_id=9, charging_profile={}))
    assert got.status == "Accepted"
    report = await fake_csms.wait_for("CS201-RS", "ReportChargingProfiles")
    assert report["chargingProfile"][0]["transactionId"] == tx_id

    res = await fake_csms.call("CS201-RS", call.RequestStopTransaction(transaction_id=tx_id))
    assert res.status == "Accepted"
    ended = await fake_csms.wait_for("CS201-RS", "TransactionEvent", lambda p: p["eventType"] == "Ended")
    assert ended["transactionInfo"]["stoppedReason"] == "Remote" and ended["triggerReason"] == "RemoteStop"
    assert not st.core.profiles.find(connector_id=1)  # the TxProfile ended with its transaction
    assert st.errors == []


async def test_station_max_profile_shared_between_evses(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """A ChargingStationMaxProfile of 20 A is shared by two charging EVSEs (10 A each, 3-phase)."""
    st = await make_station("CS201-MAX", "ocpp2.0.1", connectors=2)
    await st.start_session(1, "A", EV)
    await st.start_session(2, "B", EV)
    res = await fake_csms.call("CS201-MAX", call.SetChargingProfile(0, profile(1, "ChargingStationMaxProfile", 20)))
    assert res.status == "Accepted"
    await eventually(lambda: st.connector(1).current_a == 10 and st.connector(2).current_a == 10)
    bad = await fake_csms.call("CS201-MAX", call.SetChargingProfile(1, profile(2, "ChargingStationMaxProfile", 20)))
    assert bad.status == "Rejected"


async def test_trigger_reservation_expiry_and_availability(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """TriggerMessage, a reservation that expires (ReservationStatusUpdate) and ChangeAvailability work."""
    st = await make_station("CS201-TR", "ocpp2.0.1", speed=600)
    res = await fake_csms.call("CS201-TR", call.TriggerMessage(requested_message="StatusNotification"))
    assert res.status == "Accepted"
    await fake_csms.wait_for("CS201-TR", "StatusNotification", count=2)
    res = await fake_csms.call("CS201-TR", call.TriggerMessage(requested_message="TransactionEvent"))
    assert res.status == "Rejected"  # no transaction to report

    expiry = format_ts(st.now() + timedelta(seconds=60))  # 0.1 s real at speed 600
    res = await fake_csms.call(
        "CS201-TR", call.ReserveNow(id=5, expiry_date_time=expiry, id_token={"id_token": "R", "type": "ISO14443"})
    )
    assert res.status == "Accepted"
    await fake_csms.wait_for("CS201-TR", "StatusNotification", lambda p: p["connectorStatus"] == "Reserved")
    update = await fake_csms.wait_for("CS201-TR", "ReservationStatusUpdate")
    assert update == {"reservationId": 5, "reservationUpdateStatus": "Expired"}

    res = await fake_csms.call("CS201-TR", call.ChangeAvailability(operational_status="Inoperative"))
    assert res.status == "Accepted"
    await fake_csms.wait_for("CS201-TR", "StatusNotification", lambda p: p["connectorStatus"] == "Unavailable")
    assert st.connector(1).state is ConnectorState.UNAVAILABLE
    res = await fake_csms.call("CS201-TR", call.ChangeAvailability(operational_status="Operative"))
    assert res.status == "Accepted"
    await eventually(lambda: st.connector(1).state is ConnectorState.AVAILABLE)


async def test_external_limit_and_fault_notifications(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """An EMS limit caps the draw and is reported (Notify/ClearedChargingLimit); a fault sends NotifyEvent."""
    st = await make_station("CS201-EXT", "ocpp2.0.1")
    await st.start_session(1, "TAG", EV)
    handler = st.handler
    assert isinstance(handler, V201Handler)
    st.enqueue(handler.apply_external_limit(1, 7.0))
    limit = await fake_csms.wait_for("CS201-EXT", "NotifyChargingLimit")
    assert limit["chargingLimit"]["chargingLimitSource"] == "EMS" and limit["evseId"] == 1
    assert st.connector(1).current_a == 7
    st.enqueue(handler.clear_external_limit(1))
    await fake_csms.wait_for("CS201-EXT", "ClearedChargingLimit")
    assert st.connector(1).current_a == 16
    st.set_fault(1)
    event = await fake_csms.wait_for("CS201-EXT", "NotifyEvent")
    assert event["eventData"][0]["variable"]["name"] == "Problem"
    await fake_csms.wait_for("CS201-EXT", "TransactionEvent", lambda p: p["eventType"] == "Ended")
    await fake_csms.wait_for("CS201-EXT", "StatusNotification", lambda p: p["connectorStatus"] == "Faulted")


async def test_every_command_gets_a_schema_valid_answer(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """Each 2.0.1 CSMS-initiated action gets a valid CALLRESULT, never a CALLERROR."""
    st = await make_station("CS201-ALL", "ocpp2.0.1", connectors=2, speed=600)
    session = await st.start_session(1, "TAG", EV)
    assert session is not None
    now = format_ts(datetime.now(UTC))
    token = {"id_token": "T", "type": "ISO14443"}
    cert = {"hash_algorithm": "SHA256", "issuer_name_hash": "a", "issuer_key_hash": "b", "serial_number": "c"}
    comp = {"name": "OCPPCommCtrlr"}
    requests = [
        call.CancelReservation(reservation_id=1),
        call.CertificateSigned(certificate_chain="-----PEM-----"),
        call.ChangeAvailability(operational_status="Operative", evse={"id": 1}),
        call.ClearCache(),
        call.ClearChargingProfile(charging_profile_id=123),
        call.ClearDisplayMessage(id=1),
        call.ClearVariableMonitoring(id=[1, 2]),
        call.CostUpdated(total_cost=1.5, transaction_id=session.key),
        call.CustomerInformation(request_id=1, report=True, clear=False, id_token=token),
        call.DataTransfer(vendor_id="OpenCSMS", message_id="ping", data={"a": 1}),
        call.DeleteCertificate(certificate_hash_data=cert),
        call.GetBaseReport(request_id=2, report_base="SummaryInventory"),
        call.GetChargingProfiles(request_id=3, charging_profile={"charging_profile_purpose": "TxProfile"}),
        call.GetCompositeSchedule(duration=3600, evse_id=0),
        call.GetDisplayMessages(request_id=4),
        call.GetInstalledCertificateIds(),
        call.GetLocalListVersion(),
        call.GetLog(log={"remote_location": "ftp://x/"}, log_type="DiagnosticsLog", request_id=5),
        call.GetMonitoringReport(request_id=6),
        call.GetReport(request_id=7, component_variable=[{"component": comp}]),
        call.GetTransactionStatus(transaction_id=session.key),
        call.GetVariables(get_variable_data=[var("ChargingStation", "AvailabilityState")]),
        call.InstallCertificate(certificate_type="CSMSRootCertificate", certificate="-----PEM-----"),
        call.PublishFirmware(location="https://x/", checksum="abc", request_id=8),
        call.ReserveNow(id=9, expiry_date_time=now, id_token=token, evse_id=2),
        call.Reset(type="OnIdle"),
        call.SendLocalList(
            version_number=3,
            update_type="Full",
            local_authorization_list=[{"id_token": token, "id_token_info": {"status": "Accepted"}}],
        ),
        call.SetChargingProfile(evse_id=0, charging_profile=profile(10, "TxDefaultProfile", 20)),
        call.SetDisplayMessage(
            message={"id": 1, "priority": "NormalCycle", "message": {"format": "ASCII", "content": "hi"}}
        ),
        call.SetMonitoringBase(monitoring_base="All"),
        call.SetMonitoringLevel(severity=5),
        call.SetNetworkProfile(
            configuration_slot=1,
            connection_data={
                "ocpp_version": "OCPP20",
                "ocpp_transport": "JSON",
                "ocpp_csms_url": "ws://127.0.0.1:1/",
                "message_timeout": 30,
                "security_profile": 1,
                "ocpp_interface": "Wired0",
            },
        ),
        call.SetVariableMonitoring(
            set_monitoring_data=[
                {
                    "value": 1.0,
                    "type": "Delta",
                    "severity": 5,
                    "component": comp,
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        ),
        call.SetVariables(set_variable_data=[var("TxCtrlr", "EVConnectionTimeOut", attribute_value="90")]),
        call.TriggerMessage(requested_message="LogStatusNotification"),
        call.TriggerMessage(requested_message="SignChargingStationCertificate"),
        call.UnlockConnector(evse_id=1, connector_id=1),
        call.UnlockConnector(evse_id=9, connector_id=1),
        call.UnpublishFirmware(checksum="abc"),
        call.UpdateFirmware(request_id=11, firmware={"location": "https://x/", "retrieve_date_time": now}),
        call.RequestStopTransaction(transaction_id="unknown"),
        call.TriggerMessage(requested_message="TransactionEvent", evse={"id": 1}),
        call.TriggerMessage(requested_message="MeterValues", evse={"id": 2}),
        call.TriggerMessage(requested_message="BootNotification"),
    ]
    for request in requests:
        result = await fake_csms.call("CS201-ALL", request)
        assert result is not None, type(request).__name__
    await fake_csms.wait_for("CS201-ALL", "FirmwareStatusNotification", lambda p: p["status"] == "Installed")
    await fake_csms.wait_for("CS201-ALL", "NotifyCustomerInformation")
    await fake_csms.wait_for("CS201-ALL", "MeterValues")
    await fake_csms.wait_for("CS201-ALL", "TransactionEvent", lambda p: p["triggerReason"] == "Trigger")
    # Reset OnIdle was Scheduled: it happens once the session ends.
    await st.stop_session(1)
    await fake_csms.wait_for("CS201-ALL", "BootNotification", lambda p: p["reason"] == "RemoteReset")
    assert st.errors == []
