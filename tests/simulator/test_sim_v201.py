"""OCPP 2.0.1 simulated station against the fake CSMS: boot, sessions, offline replay."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from simulator.clock import format_ts, parse_ts
from simulator.ev import EVSpec, EVState
from simulator.model import Behaviour, ConnectorState
from tests.simulator.conftest import StationFactory
from tests.simulator.fake_csms import FakeCsms
from tests.simulator.helpers import eventually

EV = EVSpec(capacity_kwh=50, max_current_a=16, phases=3)
FAST = {"SampledDataCtrlr.TxUpdatedInterval": "10"}


async def test_boot_pending_then_accepted(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """A Pending BootNotification is retried after the interval; then EVSEs report Available."""
    fake_csms.boot_statuses["CS201-BOOT"] = ["Pending"]
    fake_csms.heartbeat_interval = 2  # simulated seconds: the retry comes quickly
    await make_station("CS201-BOOT", "ocpp2.0.1", connectors=2)
    boots = fake_csms.of("CS201-BOOT", "BootNotification")
    assert len(boots) == 2 and boots[0]["reason"] == "PowerUp"
    assert boots[0]["chargingStation"]["vendorName"]
    for evse in (1, 2):
        status = await fake_csms.wait_for("CS201-BOOT", "StatusNotification", lambda p, e=evse: p["evseId"] == e)
        assert status["connectorStatus"] == "Available" and status["timestamp"].endswith("Z")


async def test_full_session(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """TransactionEvent Started/Updated/Ended share a station id, seqNo counts up, samples are complete."""
    st = await make_station("CS201-S", "ocpp2.0.1", speed=120, config=FAST)
    session = await st.start_session(1, "TAG-1", EV, soc=0.5)
    assert session is not None
    await fake_csms.wait_for("CS201-S", "Authorize")
    started = await fake_csms.wait_for("CS201-S", "TransactionEvent", lambda p: p["eventType"] == "Started")
    assert started["triggerReason"] == "Authorized" and started["seqNo"] == 0
    assert started["transactionInfo"]["transactionId"] == session.key
    assert started["idToken"] == {"idToken": "TAG-1", "type": "ISO14443"}
    assert started["evse"] == {"id": 1, "connectorId": 1}
    assert "offline" not in started
    update = await fake_csms.wait_for(
        "CS201-S", "TransactionEvent", lambda p: p["triggerReason"] == "MeterValuePeriodic"
    )
    values = {(v["measurand"], v.get("phase")): v for v in update["meterValue"][0]["sampledValue"]}
    assert values[("Current.Import", "L2")]["value"] == 16.0
    assert values[("Voltage", "L1-N")]["unitOfMeasure"] == {"unit": "V"}
    assert values[("SoC", None)]["location"] == "EV"
    await fake_csms.wait_for("CS201-S", "StatusNotification", lambda p: p["connectorStatus"] == "Occupied")

    await st.stop_session(1)
    ended = await fake_csms.wait_for("CS201-S", "TransactionEvent", lambda p: p["eventType"] == "Ended")
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    assert ended["triggerReason"] == "StopAuthorized"
    seqs = [p["seqNo"] for p in fake_csms.of("CS201-S", "TransactionEvent")]
    assert seqs == list(range(len(seqs)))
    await st.unplug(1)
    await fake_csms.wait_for("CS201-S", "StatusNotification", lambda p: p["connectorStatus"] == "Available", count=2)
    assert st.errors == []


async def test_offline_events_replayed_with_offline_flag(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """Events created offline are replayed in order after reconnect with offline=true and original times."""
    st = await make_station("CS201-OFF", "ocpp2.0.1", speed=120, config=FAST)
    await st.start_session(1, "TAG-A", EV)
    await fake_csms.wait_for("CS201-OFF", "TransactionEvent", lambda p: p["eventType"] == "Started")
    await st.wait_queue_empty()
    await st.go_offline(abrupt=True)
    await asyncio.sleep(0.3)
    await st.stop_session(1)
    queued = st.outbox.persistent_count
    assert queued >= 2
    assert not [p for p in fake_csms.of("CS201-OFF", "TransactionEvent") if p.get("offline")]

    await st.go_online()
    await st.wait_connected()
    await st.wait_queue_empty()
    events = fake_csms.of("CS201-OFF", "TransactionEvent")
    offline = [p for p in events if p.get("offline")]
    assert len(offline) == queued
    assert offline[-1]["eventType"] == "Ended"
    assert [p["seqNo"] for p in events] == list(range(len(events)))
    stamps = [p["timestamp"] for p in events]
    assert stamps == sorted(stamps)
    assert fake_csms.connect_count["CS201-OFF"] == 2
    assert len(fake_csms.of("CS201-OFF", "BootNotification")) == 1  # a reconnect is not a reboot
    assert st.errors == []


async def test_unexpected_close_reconnects_with_backoff(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """When the CSMS drops the connection the station reconnects by itself and re-reports its status."""
    st = await make_station("CS201-RC", "ocpp2.0.1")
    statuses = len(fake_csms.of("CS201-RC", "StatusNotification"))
    await fake_csms.connections["CS201-RC"]._connection.close()
    await eventually(lambda: fake_csms.connect_count.get("CS201-RC") == 2, what="reconnect")
    await st.wait_connected()
    await fake_csms.wait_for("CS201-RC", "StatusNotification", count=statuses + 1)
    assert st.reconnects == 1


async def test_charging_needs_and_ev_taper(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """With send_charging_needs the station sends NotifyEVChargingNeeds; a nearly full EV draws less."""
    st = await make_station("CS201-EV", "ocpp2.0.1", behaviour=Behaviour(send_charging_needs=True))
    await st.start_session(1, "TAG", EV, soc=0.95)
    needs = await fake_csms.wait_for("CS201-EV", "NotifyEVChargingNeeds")
    assert needs["evseId"] == 1
    assert needs["chargingNeeds"]["acChargingParameters"]["energyAmount"] == 2500
    assert 1 < st.connector(1).current_a < 16
    assert st.connector(1).state is ConnectorState.CHARGING


async def test_charging_needs_ask_for_the_energy_up_to_the_charge_limit(
    fake_csms: FakeCsms, make_station: StationFactory
) -> None:
    """A car with a charge limit asks for the energy up to that limit, and says when it leaves."""
    st = await make_station("CS201-LIM", "ocpp2.0.1", behaviour=Behaviour(send_charging_needs=True))
    departure = st.now() + timedelta(hours=4)
    await st.start_session(1, "TAG", EVState(EV, 0.3, target_soc=0.8), departure=departure)
    needs = (await fake_csms.wait_for("CS201-LIM", "NotifyEVChargingNeeds"))["chargingNeeds"]
    assert needs["acChargingParameters"]["energyAmount"] == round(0.5 * EV.capacity_kwh * 1000)
    assert parse_ts(needs["departureTime"]) == parse_ts(format_ts(departure))
