"""OCPP 1.6J simulated station against the fake CSMS: boot, sessions, offline replay, commands."""

from __future__ import annotations

import asyncio

from simulator.ev import EVSpec
from simulator.model import ConnectorState
from tests.simulator.conftest import StationFactory
from tests.simulator.fake_csms import FakeCsms

EV = EVSpec(capacity_kwh=50, max_current_a=16, phases=3)
FAST = {"MeterValueSampleInterval": "10"}


async def test_boot_reports_statuses_and_security_event(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """A 1.6 station boots, reports every connector (incl. 0) Available and a startup security event."""
    station = await make_station("CP16-BOOT", "ocpp1.6", connectors=2)
    boot = await fake_csms.wait_for("CP16-BOOT", "BootNotification")
    assert boot["chargePointVendor"] and boot["chargePointModel"]
    for cid in (0, 1, 2):
        await fake_csms.wait_for("CP16-BOOT", "StatusNotification", lambda p, c=cid: p["connectorId"] == c)
    event = await fake_csms.wait_for("CP16-BOOT", "SecurityEventNotification")
    assert event["type"] == "StartupOfTheDevice" and event["timestamp"].endswith("Z")
    assert station.errors == []


async def test_full_session(fake_csms: FakeCsms, make_station: StationFactory) -> None:
    """Authorize, StartTransaction, periodic MeterValues with the CSMS id, StopTransaction, unplug."""
    station = await make_station("CP16-S", "ocpp1.6", speed=120, config=FAST)
    session = await station.start_session(1, "TAG-1", EV, soc=0.4)
    assert session is not None
    await fake_csms.wait_for("CP16-S", "Authorize", lambda p: p["idTag"] == "TAG-1")
    start = await fake_csms.wait_for("CP16-S", "StartTransaction")
    assert start["connectorId"] == 1 and start["idTag"] == "TAG-1" and start["timestamp"].endswith("Z")
    assert start["meterStart"] == 0
    meter = await fake_csms.wait_for("CP16-S", "MeterValues", count=2)
    tx_id = meter["transactionId"]
    assert tx_id == session.csms_id
    values = {(v["measurand"], v.get("phase")): v for v in meter["meterValue"][0]["sampledValue"]}
    assert values[("Current.Import", "L1")]["unit"] == "A"
    assert float(values[("Current.Import", "L1")]["value"]) == 16.0
    assert float(values[("Power.Active.Import", None)]["value"]) == 16 * 230 * 3
    assert values[("SoC", None)]["location"] == "EV"
    assert values[("Energy.Active.Import.Register", None)]["context"] == "Sample.Periodic"
    assert station.connector(1).state is ConnectorState.CHARGING
    await fake_csms.wait_for("CP16-S", "StatusNotification", lambda p: p["status"] == "Charging")

    await station.stop_session(1)
    stop = await fake_csms.wait_for("CP16-S", "StopTransaction")
    assert stop["transactionId"] == tx_id and stop["reason"] == "Local"
    assert stop["meterStop"] > start["meterStart"]
    assert stop["transactionData"][-1]["sampledValue"][0]["context"] == "Transaction.End"
    await fake_csms.wait_for("CP16-S", "StatusNotification", lambda p: p["status"] == "Finishing")
    await station.unplug(1)
    await fake_csms.wait_for("CP16-S", "StatusNotification", lambda p: p["status"] == "Available", count=2)
    assert station.snapshot().sessions_completed == 1
    assert station.errors == []


async def test_offline_queue_replays_in_order_with_id_mapping(
    fake_csms: FakeCsms, make_station: StationFactory
) -> None:
    """Offline Start/MeterValues/Stop queue up and replay in order; a replayed Start maps to the CSMS id."""
    station = await make_station("CP16-OFF", "ocpp1.6", speed=120, config=FAST)
    await station.start_session(1, "TAG-A", EV)
    first = station.core.connectors[1].session
    assert first is not None
    await fake_csms.wait_for("CP16-OFF", "StartTransaction")
    await station.go_offline()
    before = len(fake_csms.received)
    await asyncio.sleep(0.3)  # ~36 simulated seconds: a few meter samples queue up
    await station.stop_session(1)
    await station.unplug(1)
    second = await station.start_session(1, "TAG-B", EV)  # started offline: local placeholder id
    assert second is not None and second.csms_id is None
    await asyncio.sleep(0.2)
    await station.stop_session(1)
    queued = [item.action for item in station.outbox.items()]
    assert queued.count("StopTransaction") == 2 and queued.count("StartTransaction") == 1
    assert "MeterValues" in queued
    assert len(fake_csms.received) == before  # nothing reached the CSMS while offline

    await station.go_online()
    await station.wait_connected()
    await station.wait_queue_empty()
    stops = fake_csms.of("CP16-OFF", "StopTransaction")
    starts = fake_csms.of("CP16-OFF", "StartTransaction")
    assert len(starts) == 2 and len(stops) == 2
    first_id = first.csms_id
    assert stops[0]["transactionId"] == first_id and stops[0]["idTag"] == "TAG-A"
    assert second.csms_id is not None and stops[1]["transactionId"] == second.csms_id != first_id
    # Original timestamps survive, in order.
    tx_actions = [m for m in fake_csms.received if m.action in ("StartTransaction", "StopTransaction", "MeterValues")]
    stamps = [m.payload.get("timestamp") or m.payload["meterValue"][0]["timestamp"] for m in tx_actions]
    assert stamps == sorted(stamps)
    assert station.errors == []
