"""Station settings read on every physics tick stay current, and a fleet may skip checking its own messages."""

from __future__ import annotations

from simulator.clock import SimClock
from simulator.ev import EVSpec
from simulator.station import SimStation
from tests.simulator.conftest import StationFactory
from tests.simulator.fake_csms import FakeCsms
from tests.simulator.helpers import eventually


def test_16_settings_follow_configuration_changes() -> None:
    """ChangeConfiguration is seen by the next settings() read."""
    station = SimStation("CP16-SET", "ws://127.0.0.1:1/ocpp", "ocpp1.6", 1, SimClock())
    assert station.handler.settings().meter_interval_s == 60
    assert station.v16.config.change("MeterValueSampleInterval", "15") == "Accepted"
    assert station.handler.settings().meter_interval_s == 15


def test_201_settings_follow_variable_changes() -> None:
    """SetVariables and values the station sets itself are seen by the next settings() read."""
    station = SimStation("CS201-SET", "ws://127.0.0.1:1/ocpp", "ocpp2.0.1", 1, SimClock())
    model = station.v201.device_model
    before = station.handler.settings()
    result, changed = model.set(
        {
            "component": {"name": "SampledDataCtrlr"},
            "variable": {"name": "TxUpdatedInterval"},
            "attribute_value": str(before.meter_interval_s + 5),
        }
    )
    assert result["attribute_status"] == "Accepted" and changed is not None
    assert station.handler.settings().meter_interval_s == before.meter_interval_s + 5
    model.set_internal("OCPPCommCtrlr", "HeartbeatInterval", "77")
    assert station.handler.settings().heartbeat_interval_s == 77


async def test_station_that_skips_schema_checks_still_talks_to_the_csms(
    fake_csms: FakeCsms, make_station: StationFactory
) -> None:
    """With validate_messages off a station boots, starts a session and sends meter values as usual."""
    for protocol in ("ocpp1.6", "ocpp2.0.1"):
        station = await make_station(f"NOVAL-{protocol}", protocol, validate_messages=False)
        assert not station.validate_messages
        await station.start_session(1, "TAG", EVSpec(capacity_kwh=40, max_current_a=16))
        await eventually(lambda station=station: station.connector(1).current_a == 16, what="charging")
        action = "StartTransaction" if protocol == "ocpp1.6" else "TransactionEvent"
        await fake_csms.wait_for(station.identity, action)
