"""Ground truth for smart-charging tests: what stations really draw, per station phase and per grid node."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulator.clock import SimClock
from simulator.ev import EVSpec, EVState
from simulator.model import Behaviour, StopReason, TxTrigger
from simulator.site import LoadStep, SiteMeter, StationWiring
from simulator.station import SimStation

T0 = datetime(2026, 6, 3, 8, 0, tzinfo=UTC)
ONE_PHASE = EVSpec(capacity_kwh=40, max_current_a=16, phases=1)
THREE_PHASE = EVSpec(capacity_kwh=60, max_current_a=16, phases=3)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def offline_station(identity: str, behaviour: Behaviour) -> SimStation:
    """A station that is never connected: its core runs the physics, which is all these tests need."""
    clock = SimClock(start=T0)
    return SimStation(identity, "ws://127.0.0.1:1/ocpp", "ocpp1.6", 2, clock, behaviour=behaviour, max_current_a=32.0)


def test_meter_adds_draws_up_the_tree_through_each_station_phase_map() -> None:
    """A station's L1..L3 land on the grid phases its rotation names, at its node and every node above."""
    parents = {"site": None, "feeder-a": "site", "feeder-b": "site"}
    meter = SiteMeter(parents, {"cp1": StationWiring("feeder-a"), "cp2": StationWiring("feeder-b", (2, 3, 1))})
    meter.record("cp1", at(0), (16.0, 16.0, 16.0))
    meter.record("cp2", at(10), (10.0, 0.0, 0.0))  # a single-phase car: station L1 is grid L2
    assert meter.load("feeder-a") == (16.0, 16.0, 16.0)
    assert meter.load("feeder-b") == (0.0, 10.0, 0.0)
    assert meter.load("site") == (16.0, 26.0, 16.0)
    meter.record("cp1", at(20), (6.0, 6.0, 6.0))
    assert meter.load("site") == (6.0, 16.0, 6.0) and meter.station_draw("cp2") == (10.0, 0.0, 0.0)
    assert list(meter.steps("site")) == [
        LoadStep(at(0), at(10), (16.0, 16.0, 16.0)),
        LoadStep(at(10), at(20), (16.0, 26.0, 16.0)),
        LoadStep(at(20), None, (6.0, 16.0, 6.0)),
    ]


def test_steps_are_clipped_to_the_window_asked_for() -> None:
    """Steps start at the window's start with the load in force then, end at its end, and skip empty steps."""
    meter = SiteMeter({"site": None}, {"cp1": StationWiring("site")})
    meter.record("cp1", at(0), (8.0, 8.0, 8.0))
    meter.record("cp1", at(30), (12.0, 12.0, 12.0))
    meter.record("cp1", at(30), (10.0, 10.0, 10.0))  # two changes at one instant: the last one holds
    meter.record("cp1", at(90), (0.0, 0.0, 0.0))
    assert list(meter.steps("site", at(10), at(60))) == [
        LoadStep(at(10), at(30), (8.0, 8.0, 8.0)),
        LoadStep(at(30), at(60), (10.0, 10.0, 10.0)),
    ]
    assert list(meter.station_steps("cp1", at(100), at(200))) == [LoadStep(at(100), at(200), (0.0, 0.0, 0.0))]


def test_meter_rejects_wiring_it_cannot_place() -> None:
    """Unknown parents, unknown nodes and rotations that are not a phase permutation are refused up front."""
    with pytest.raises(ValueError):
        SiteMeter({"feeder": "nowhere"}, {})
    with pytest.raises(ValueError):
        SiteMeter({"site": None}, {"cp1": StationWiring("feeder")})
    with pytest.raises(ValueError):
        StationWiring("site", (1, 1, 2))


def test_attached_station_reports_every_change_of_what_it_draws() -> None:
    """Plugging in, starting, being limited and stopping change the draw; each change reaches the meter."""
    station = offline_station("cp1", Behaviour(draw_factor=0.5))
    meter = SiteMeter({"site": None}, {"cp1": StationWiring("site", (3, 1, 2))})
    meter.attach(station)
    core = station.core
    core.plug_in(1, EVState(THREE_PHASE, 0.2), at(0))
    core.plug_in(2, EVState(ONE_PHASE, 0.2), at(0))
    core.begin_transaction(1, "TAG", at(5), TxTrigger.AUTHORIZED)
    core.begin_transaction(2, "TAG", at(6), TxTrigger.AUTHORIZED)
    assert station.phase_currents() == (16.0, 8.0, 8.0)  # both cars on station L1, the three-phase one on L2, L3
    assert meter.load("site") == (8.0, 8.0, 16.0)
    core.end_transaction(1, at(60), StopReason.LOCAL, TxTrigger.STOP_AUTHORIZED)
    assert meter.station_draw("cp1") == (8.0, 0.0, 0.0)
    assert [step.start for step in meter.station_steps("cp1")] == [at(5), at(6), at(60)]
