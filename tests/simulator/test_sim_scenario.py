"""Scenario files: the shipped ones parse, and mistakes are reported with the offending key."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulator.fleet import arrival_probability, draw_visit, plan_stations
from simulator.model import Protocol
from simulator.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


@pytest.mark.parametrize("name", ["demo.toml", "ci-smoke.toml"])
def test_shipped_scenarios_parse(name: str) -> None:
    """The scenario files in config/scenarios are valid."""
    scenario = load_scenario(SCENARIOS / name)
    assert scenario.stations.count >= 1 and len(scenario.arrivals.per_connector_per_hour) == 24


def test_demo_scenario_content() -> None:
    """demo.toml describes a mixed 50-station fleet at 60x with several EV models."""
    scenario = load_scenario(SCENARIOS / "demo.toml")
    assert scenario.stations.count == 50 and scenario.simulation.speed == 60
    assert set(scenario.stations.protocol_mix) == {Protocol.V16, Protocol.V201}
    assert len(scenario.ev_models) == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stations": {"conectors": 2}}, "stations.conectors: Extra inputs are not permitted"),
        ({"simulaton": {}}, "simulaton: Extra inputs are not permitted"),
        ({"ev_models": [{"name": "x"}]}, "ev_models[0].capacity_kwh: Field required"),
        ({"arrivals": {"per_connector_per_hour": [1.0]}}, "arrivals.per_connector_per_hour: Value error, needs 24"),
        ({"stations": {"protocol_mix": {"ocpp2.1": 1}}}, "stations.protocol_mix.ocpp2.1"),
        ({"simulation": {"speed": 0}}, "simulation.speed: Input should be greater than 0"),
        ({"stay": {"min_minutes": 60, "mode_minutes": 30}}, "stay: Value error, need min_minutes"),
        ({"behaviour": {"delayed_share": 0.7, "underdraw_share": 0.7}}, "behaviour: Value error"),
    ],
)
def test_bad_scenario_names_the_key(data: dict[str, object], message: str) -> None:
    """Validation errors say which dotted key is wrong."""
    with pytest.raises(ScenarioError) as excinfo:
        parse_scenario(data, "bad.toml")
    assert str(excinfo.value).startswith("bad.toml: ")
    assert message in str(excinfo.value)


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    """A missing file or broken TOML is a ScenarioError naming the file."""
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[stations\ncount = 1\n")
    with pytest.raises(ScenarioError, match="broken.toml: invalid TOML"):
        load_scenario(broken)


def test_station_plan_follows_mix_and_shares() -> None:
    """Protocols follow the weights exactly and behaviour shares are apportioned; seeds reproduce plans."""
    scenario = parse_scenario(
        {
            "stations": {"count": 20, "protocol_mix": {"ocpp1.6": 3, "ocpp2.0.1": 1}},
            "behaviour": {"ignore_profiles_share": 0.1, "delayed_share": 0.2, "underdraw_share": 0.25},
        }
    )
    plans = plan_stations(scenario, random.Random(1))
    assert Counter(p.protocol for p in plans) == {Protocol.V16: 15, Protocol.V201: 5}
    assert sum(p.behaviour.ignore_profiles for p in plans) == 2
    assert sum(p.behaviour.profile_delay_s > 0 for p in plans) == 4
    assert sum(p.behaviour.draw_factor < 1 for p in plans) == 5
    assert len({p.identity for p in plans}) == 20
    assert plans == plan_stations(scenario, random.Random(1))
    only_201 = plan_stations(scenario, random.Random(1), count=3, protocol="2.0.1")
    assert [p.protocol for p in only_201] == [Protocol.V201] * 3


def test_visits_and_arrival_probability() -> None:
    """Visits draw EV, SoC, stay and tag within the configured ranges; Poisson arrival chance is sane."""
    scenario = Scenario()
    rng = random.Random(3)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(200):
        visit = draw_visit(scenario, rng, now)
        minutes = (visit.departure - now).total_seconds() / 60
        assert scenario.stay.min_minutes <= minutes <= scenario.stay.max_minutes
        assert scenario.arrivals.initial_soc_min <= visit.soc <= scenario.arrivals.initial_soc_max
        assert visit.id_tag in scenario.id_tags.all_tags()
    assert arrival_probability(0, 60) == 0
    assert arrival_probability(1.0, 3600) == pytest.approx(1 - 2.718281828**-1)
