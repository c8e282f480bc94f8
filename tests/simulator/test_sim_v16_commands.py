"""CSMS-initiated OCPP 1.6J commands against a simulated station."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.v16 import call

from simulator.clock import SimClock, format_ts
from simulator.ev import EVSpec, EVState
from simulator.model import Behaviour, ConnectorState, TxTrigger
from simulator.station import SimStation
from tests.simulator.conftest import StationFactory
from tests.simulator.fake_csms import FakeCsms
from tests.simulator.helpers import eventually

EV = EVSpec(capacity_kwh=50, max_current_a=16, phases=3)


def profile(pid: int, purpose: str, limit: float, *, stack: int = 1, unit: str = "A") -> dict[str, Any]:
    return {
        "charging_profile_id": pid,
        "stack_level": stack,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Relative" if purpose != "ChargePointMaxProfile" else "Absolute",
        "charging_schedule": {
            "charging_rate_unit": unit,
            "charging_schedule_period": [{"start_period": 0, "limit": limit}],
        },
    }


async def test_set_charging_profile_lowers_draw(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """TxDefault caps the draw, a TxProfile overrides it (below 6 A the EV pauses), clearing restores it."""
    st = await make_station("CP16-SC", "ocpp1.6")
    await st.start_session(1, "TAG", EV)
    await eventually(lambda: st.connector(1).current_a == 16, what="full draw")

    res = await fake_csms.call("CP16-SC", call.SetChargingProfile(1, profile(1, "TxDefaultProfile", 10)))
    assert res.status == "Accepted"
    await eventually(lambda: st.connector(1).current_a == 10, what="10 A")

    res = await fake_csms.call("CP16-SC", call.SetChargingProfile(1, profile(2, "TxProfile", 4)))
    assert res.status == "Accepted"
    await eventually(lambda: st.connector(1).current_a == 0, what="pause")
    assert st.connector(1).state is ConnectorState.SUSPENDED_EVSE
    await fake_csms.wait_for("CP16-SC", "StatusNotification", lambda p: p["status"] == "SuspendedEVSE")

    comp = await fake_csms.call("CP16-SC", call.GetCompositeSchedule(connector_id=1, duration=600))
    assert comp.status == "Accepted"
    assert comp.charging_schedule["charging_schedule_period"][0]["limit"] == 4.0

    res = await fake_csms.call("CP16-SC", call.ClearChargingProfile(charging_profile_purpose="TxProfile"))
    assert res.status == "Accepted"
    await eventually(lambda: st.connector(1).current_a == 10, what="back to TxDefault")

    # A station-wide cap in W applies as amps per phase: 4140 W / (230 V * 3) = 6 A.
    res = await fake_csms.call(
        "CP16-SC", call.SetChargingProfile(0, profile(3, "ChargePointMaxProfile", 4140, unit="W"))
    )
    assert res.status == "Accepted"
    await eventually(lambda: abs(st.connector(1).current_a - 6) < 1e-6, what="station cap")
    assert st.errors == []


async def test_tx_profile_without_transaction_is_rejected(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """A TxProfile for a connector with no transaction, or a station max on a connector, is rejected."""
    await make_station("CP16-REJ", "ocpp1.6")
    res = await fake_csms.call("CP16-REJ", call.SetChargingProfile(1, profile(1, "TxProfile", 10)))
    assert res.status == "Rejected"
    res = await fake_csms.call("CP16-REJ", call.SetChargingProfile(1, profile(2, "ChargePointMaxProfile", 10)))
    assert res.status == "Rejected"


async def test_remote_start_and_stop(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """RemoteStartTransaction starts a session once an EV is plugged in; RemoteStop ends it (Remote)."""
    st = await make_station("CP16-RS", "ocpp1.6")
    res = await fake_csms.call("CP16-RS", call.RemoteStartTransaction(id_tag="APP-1", connector_id=1))
    assert res.status == "Accepted"
    await fake_csms.wait_for("CP16-RS", "StatusNotification", lambda p: p["status"] == "Preparing")
    await st.plug_in(1, EV)
    start = await fake_csms.wait_for("CP16-RS", "StartTransaction")
    assert start["idTag"] == "APP-1"
    await eventually(
        lambda: st.core.connectors[1].session is not None and st.core.connectors[1].session.csms_id is not None
    )
    session = st.core.connectors[1].session
    assert session is not None
    res = await fake_csms.call("CP16-RS", call.RemoteStopTransaction(transaction_id=session.csms_id))
    assert res.status == "Accepted"
    stop = await fake_csms.wait_for("CP16-RS", "StopTransaction")
    assert stop["reason"] == "Remote" and stop["transactionId"] == session.csms_id
    res = await fake_csms.call("CP16-RS", call.RemoteStopTransaction(transaction_id=999999))
    assert res.status == "Rejected"


async def test_configuration_keys(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """GetConfiguration lists keys and unknowns; ChangeConfiguration rejects read-only and unknown keys."""
    await make_station("CP16-CFG", "ocpp1.6", connectors=2)
    res = await fake_csms.call("CP16-CFG", call.GetConfiguration(key=["NumberOfConnectors", "Nope"]))
    assert res.configuration_key == [{"key": "NumberOfConnectors", "readonly": True, "value": "2"}]
    assert res.unknown_key == ["Nope"]
    everything = await fake_csms.call("CP16-CFG", call.GetConfiguration())
    keys = {k["key"] for k in everything.configuration_key}
    assert {"HeartbeatInterval", "MeterValueSampleInterval", "ChargeProfileMaxStackLevel"} <= keys
    assert "AuthorizationKey" not in keys  # write-only

    change = await fake_csms.call("CP16-CFG", call.ChangeConfiguration(key="NumberOfConnectors", value="4"))
    assert change.status == "Rejected"
    change = await fake_csms.call("CP16-CFG", call.ChangeConfiguration(key="Bogus", value="1"))
    assert change.status == "NotSupported"
    change = await fake_csms.call("CP16-CFG", call.ChangeConfiguration(key="HeartbeatInterval", value="abc"))
    assert change.status == "Rejected"
    beats = len(fake_csms.of("CP16-CFG", "Heartbeat"))
    change = await fake_csms.call("CP16-CFG", call.ChangeConfiguration(key="HeartbeatInterval", value="6"))
    assert change.status == "Accepted"
    await fake_csms.wait_for("CP16-CFG", "Heartbeat", count=beats + 2)  # 6 simulated s = 0.1 s real


async def test_trigger_message(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """TriggerMessage makes the station send the requested message; an unknown connector is rejected."""
    st = await make_station("CP16-TRG", "ocpp1.6")
    await st.start_session(1, "TAG", EV)
    await eventually(
        lambda: st.core.connectors[1].session is not None and st.core.connectors[1].session.csms_id is not None
    )
    res = await fake_csms.call("CP16-TRG", call.TriggerMessage(requested_message="MeterValues", connector_id=1))
    assert res.status == "Accepted"
    mv = await fake_csms.wait_for(
        "CP16-TRG", "MeterValues", lambda p: p["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    )
    assert mv["connectorId"] == 1
    res = await fake_csms.call("CP16-TRG", call.TriggerMessage(requested_message="StatusNotification", connector_id=1))
    assert res.status == "Accepted"
    await fake_csms.wait_for("CP16-TRG", "StatusNotification", lambda p: p["status"] == "Charging", count=2)
    res = await fake_csms.call("CP16-TRG", call.TriggerMessage(requested_message="Heartbeat", connector_id=7))
    assert res.status == "Rejected"


async def test_firmware_diagnostics_reservation_reset(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """UpdateFirmware/GetDiagnostics report progress; ReserveNow reserves; Reset makes the station boot again."""
    st = await make_station("CP16-MNT", "ocpp1.6", speed=600)
    now = datetime.now(UTC)
    await fake_csms.call(
        "CP16-MNT", call.UpdateFirmware(location="https://fw.example/1.1", retrieve_date=format_ts(now))
    )
    await fake_csms.wait_for("CP16-MNT", "FirmwareStatusNotification", lambda p: p["status"] == "Installed")
    statuses = [p["status"] for p in fake_csms.of("CP16-MNT", "FirmwareStatusNotification")]
    assert statuses == ["Downloading", "Downloaded", "Installing", "Installed"]
    diag = await fake_csms.call("CP16-MNT", call.GetDiagnostics(location="ftp://diag.example/"))
    assert diag.file_name
    await fake_csms.wait_for("CP16-MNT", "DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded")

    expiry = format_ts(st.now() + timedelta(hours=1))
    res = await fake_csms.call(
        "CP16-MNT", call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag="R1", reservation_id=7)
    )
    assert res.status == "Accepted"
    await fake_csms.wait_for("CP16-MNT", "StatusNotification", lambda p: p["status"] == "Reserved")
    assert not await st.present_tag(1, "OTHER")  # reserved for R1
    res = await fake_csms.call("CP16-MNT", call.CancelReservation(reservation_id=7))
    assert res.status == "Accepted"

    res = await fake_csms.call("CP16-MNT", call.Reset(type="Soft"))
    assert res.status == "Accepted"
    await fake_csms.wait_for("CP16-MNT", "BootNotification", count=2)
    await st.wait_connected()
    assert st.errors == []


async def test_every_command_gets_a_schema_valid_answer(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """Each 1.6 (+ security extension) CSMS-initiated action gets a valid CALLRESULT, never a CALLERROR."""
    st = await make_station("CP16-ALL", "ocpp1.6", speed=600)
    await st.start_session(1, "TAG", EV)
    now = format_ts(datetime.now(UTC))
    cert_hash = {"hash_algorithm": "SHA256", "issuer_name_hash": "a", "issuer_key_hash": "b", "serial_number": "c"}
    requests = [
        call.CancelReservation(reservation_id=1),
        call.ChangeAvailability(connector_id=0, type="Operative"),
        call.ChangeConfiguration(key="MeterValueSampleInterval", value="30"),
        call.ClearCache(),
        call.ClearChargingProfile(),
        call.DataTransfer(vendor_id="OpenCSMS", message_id="ping", data="x"),
        call.DataTransfer(vendor_id="Other"),
        call.ExtendedTriggerMessage(requested_message="LogStatusNotification"),
        call.GetCompositeSchedule(connector_id=0, duration=3600, charging_rate_unit="W"),
        call.GetConfiguration(key=["HeartbeatInterval"]),
        call.GetDiagnostics(location="ftp://x/"),
        call.GetLocalListVersion(),
        call.GetLog(log={"remote_location": "ftp://x/"}, log_type="SecurityLog", request_id=3),
        call.SendLocalList(
            list_version=2,
            update_type="Full",
            local_authorization_list=[{"id_tag": "LOCAL", "id_tag_info": {"status": "Accepted"}}],
        ),
        call.SetChargingProfile(connector_id=0, cs_charging_profiles=profile(9, "TxDefaultProfile", 20)),
        call.SignedUpdateFirmware(
            request_id=4,
            firmware={
                "location": "https://x/",
                "retrieve_date_time": now,
                "signing_certificate": "c",
                "signature": "s",
            },
        ),
        call.TriggerMessage(requested_message="FirmwareStatusNotification"),
        call.TriggerMessage(requested_message="DiagnosticsStatusNotification"),
        call.TriggerMessage(requested_message="BootNotification"),
        call.UnlockConnector(connector_id=2),
        call.InstallCertificate(certificate_type="CentralSystemRootCertificate", certificate="-----PEM-----"),
        call.GetInstalledCertificateIds(certificate_type="CentralSystemRootCertificate"),
        call.DeleteCertificate(certificate_hash_data=cert_hash),
        call.CertificateSigned(certificate_chain="-----PEM-----"),
        call.ReserveNow(connector_id=0, expiry_date=now, id_tag="X", reservation_id=2),
        call.UnlockConnector(connector_id=1),
        call.ChangeAvailability(connector_id=1, type="Inoperative"),
        call.Reset(type="Hard"),
    ]
    for request in requests:
        result = await fake_csms.call("CP16-ALL", request)
        assert result is not None, type(request).__name__
    local = await fake_csms.call("CP16-ALL", call.GetLocalListVersion())
    assert local.list_version == 2
    await fake_csms.wait_for("CP16-ALL", "SignedFirmwareStatusNotification", lambda p: p["status"] == "Installed")
    await fake_csms.wait_for("CP16-ALL", "LogStatusNotification", lambda p: p["status"] == "Uploaded")
    await fake_csms.wait_for("CP16-ALL", "StopTransaction", lambda p: p["reason"] == "UnlockCommand")
    assert st.errors == []


async def test_basic_auth_and_authorization_key_change(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """Basic auth uses identity:password; a new AuthorizationKey is used on the next connection."""
    fake_csms.passwords["CP16-AUTH"] = "first-password-0001"
    st = await make_station("CP16-AUTH", "ocpp1.6", password="first-password-0001")
    res = await fake_csms.call(
        "CP16-AUTH", call.ChangeConfiguration(key="AuthorizationKey", value="second-password-0002")
    )
    assert res.status == "Accepted"
    fake_csms.passwords["CP16-AUTH"] = "second-password-0002"
    await st.go_offline()
    await st.go_online()
    await st.wait_connected()
    assert fake_csms.connect_count["CP16-AUTH"] == 2
    wrong = await make_station("CP16-BAD", "ocpp1.6", password="nope-nope-nope-nope", wait=False)
    fake_csms.passwords["CP16-BAD"] = "right-password-0000"
    await eventually(lambda: sum(1 for i, _ in fake_csms.auth_headers if i == "CP16-BAD") >= 2, what="retries")
    assert not wrong.connected and "CP16-BAD" not in fake_csms.connect_count


async def test_reserved_connector_start_carries_reservation_id(
    fake_csms: FakeCsms, make_station: StationFactory
) -> None:
    """The reserved tag may start on its connector and StartTransaction carries the reservationId."""
    st = await make_station("CP16-RES", "ocpp1.6")
    expiry = format_ts(st.now() + timedelta(hours=1))
    res = await fake_csms.call(
        "CP16-RES", call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag="R1", reservation_id=11)
    )
    assert res.status == "Accepted"
    assert await st.start_session(1, "R1", EV) is not None
    start = await fake_csms.wait_for("CP16-RES", "StartTransaction")
    assert start["reservationId"] == 11 and st.connector(1).reservation_id is None


async def test_non_ideal_stations(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """Stations that ignore profiles, apply them late or draw less than offered behave accordingly."""
    ignore = await make_station("CP16-IGN", "ocpp1.6", behaviour=Behaviour(ignore_profiles=True))
    late = await make_station("CP16-LATE", "ocpp1.6", speed=120, behaviour=Behaviour(profile_delay_s=240))
    weak = await make_station("CP16-WEAK", "ocpp1.6", behaviour=Behaviour(draw_factor=0.5))
    for st in (ignore, late, weak):
        await st.start_session(1, "TAG", EV)
        await eventually(lambda st=st: st.connector(1).current_a > 0, what="charging")
        res = await fake_csms.call(st.identity, call.SetChargingProfile(1, profile(1, "TxDefaultProfile", 10)))
        assert res.status == "Accepted"  # accepted on the wire either way
        if st is late:  # 240 simulated seconds = 2 s real before the profile applies
            assert late.connector(1).current_a == 16
    await eventually(lambda: weak.connector(1).current_a == 5, what="half of 10 A")
    await eventually(lambda: late.connector(1).current_a == 10, timeout=10, what="late profile")
    assert ignore.connector(1).current_a == 16


async def test_ev_departs_at_its_departure_time(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """An EV leaves at its departure time: the transaction ends with EVDisconnected and the connector frees up."""
    st = await make_station("CP16-DEP", "ocpp1.6", speed=600)
    await st.start_session(1, "TAG", EV, departure=st.now() + timedelta(minutes=2))
    stop = await fake_csms.wait_for("CP16-DEP", "StopTransaction")
    assert stop["reason"] == "EVDisconnected"
    await eventually(lambda: st.connector(1).state is ConnectorState.AVAILABLE)


def test_tx_profile_naming_a_transaction_before_its_answer_is_handled_is_accepted() -> None:
    """A TxProfile that arrives before the station handled the StartTransaction answer names the transaction by
    the id the CSMS gave it; the station takes it, and later rejects a profile naming another transaction."""
    station = SimStation("CP16-EARLY", "ws://127.0.0.1:1/ocpp", "ocpp1.6", 1, SimClock())
    cp: Any = station.handler.create_charge_point(None)  # type: ignore[arg-type]  # no socket needed
    station.core.plug_in(1, EVState(EV, 0.3), station.now())
    session = station.core.begin_transaction(1, "TAG", station.now(), TxTrigger.AUTHORIZED)
    tx_profile = profile(9101, "TxProfile", 10) | {"transaction_id": 42}
    assert cp._install_profile(1, tx_profile) == "Accepted"
    session.csms_id = 42  # the StartTransaction answer is handled
    station.refresh()
    assert station.connector(1).offered_a == 10
    assert cp._install_profile(1, tx_profile | {"transaction_id": 43}) == "Rejected"
