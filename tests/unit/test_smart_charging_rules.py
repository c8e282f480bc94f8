"""Smart-charging rules that need no server: what to send, how to fit it to a charger, what meter values teach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.charging import ChargingRateUnit
from csms.domain.ev_charging import learn_max_current, measure, phases_drawing
from csms.domain.grid import GridConfig, GridNode, StationWiring, grid_phases
from csms.domain.metering import MeterSample, SampledValue
from csms.scheduler.changes import ChangePolicy, select_changes
from csms.scheduler.model import Period, Plan, SessionPlan
from csms.service.charging_profiles import (
    Capabilities,
    above_somewhere,
    capabilities_from_configuration,
    capabilities_from_variables,
    profile_end,
    schedule_in_amps,
    tx_profile,
)
from csms.service.smart_charging import safe_share

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def plan_of(**currents: float) -> Plan:
    sessions = {sid: SessionPlan(sid, (Period(NOW, amps),)) for sid, amps in currents.items()}
    return Plan(NOW, NOW + timedelta(hours=1), "test", sessions)


# -- which changes are sent ---------------------------------------------------------------------------------------


def test_decreases_always_go_out_and_come_separately_from_increases() -> None:
    """A lower limit is sent even right after a write; a higher one waits for the per-EVSE interval."""
    offered = {"down": 16.0, "up": 10.0, "new": None}
    written = {"down": NOW - timedelta(seconds=10), "up": NOW - timedelta(seconds=10)}
    decreases, increases = select_changes(plan_of(down=10, up=16, new=20), offered, written, NOW)
    assert [(c.session_id, c.current_a, c.previous_a) for c in decreases] == [("down", 10, 16), ("new", 20, None)]
    assert increases == []
    _, later = select_changes(plan_of(up=16), offered, {"up": NOW - timedelta(minutes=6)}, NOW)
    assert [(c.session_id, c.current_a) for c in later] == [("up", 16)]


def test_small_increases_are_not_worth_a_write_but_resuming_is() -> None:
    """+0.5 A is below the 1 A threshold; going from 0 A (paused) to 6 A always counts."""
    decreases, increases = select_changes(plan_of(a=16.5, b=6), {"a": 16.0, "b": 0.0}, {}, NOW, ChangePolicy())
    assert decreases == []
    assert [c.session_id for c in increases] == ["b"]


# -- fitting a profile to a charger -------------------------------------------------------------------------------


def test_the_write_interval_caps_what_a_session_is_planned_at_for_now() -> None:
    """Within the interval a session is planned at most at its limit (0 when paused: its resume is held back
    too); after it, or never limited, there is no cap."""
    policy = ChangePolicy(min_interval=timedelta(minutes=2))
    a_minute_ago = NOW - timedelta(minutes=1)
    assert policy.held_at(16.0, a_minute_ago, NOW) == 16.0
    assert policy.held_at(0.0, a_minute_ago, NOW) == 0.0
    assert policy.held_at(16.0, NOW - timedelta(minutes=3), NOW) is None
    assert policy.held_at(None, None, NOW) is None


def test_tx_profile_respects_stack_level_periods_and_validity() -> None:
    """Periods beyond the validity or the charger's period count are dropped; the stack level is capped."""
    periods = [Period(NOW + timedelta(minutes=m), amps) for m, amps in ((0, 32), (5, 16), (10, 20), (30, 8))]
    caps = Capabilities(max_stack_level=0, max_periods=2)
    profile = tx_profile(1, "tx-1", periods, NOW, timedelta(minutes=15), 3, caps, 690)
    assert profile.stack_level == 0 and profile.transaction_id == "tx-1"
    assert [(p.start_period, p.limit) for p in profile.schedule.periods] == [(0, 32), (360, 16)]
    assert profile.schedule.duration == 960 and profile.schedule.start_schedule == NOW - timedelta(seconds=60)


def test_tx_profile_in_watts_for_chargers_that_only_take_power() -> None:
    """A charger that allows only W gets the current times volts times phases."""
    caps = Capabilities(units=frozenset({ChargingRateUnit.WATT}))
    profile = tx_profile(2, "7", [Period(NOW, 16)], NOW, timedelta(minutes=15), 1, caps, 230 * 3)
    assert profile.schedule.unit is ChargingRateUnit.WATT
    assert profile.schedule.periods[0].limit == 11040


def test_a_held_schedule_read_back_in_amps_and_compared_over_time() -> None:
    """What a station was sent, back in A from absolute instants (from W too), and whether it goes above what it
    would be sent now anywhere before either lapses: later steps count, rounding does not."""
    caps = Capabilities(units=frozenset({ChargingRateUnit.WATT}))
    periods = [Period(NOW, 16), Period(NOW + timedelta(minutes=30), 6)]
    sent = tx_profile(2, "7", periods, NOW, timedelta(hours=1), 1, caps, 230 * 3)
    held = schedule_in_amps(sent, 230 * 3)
    assert [(p.start - NOW, round(p.current_a, 6)) for p in held] == [
        (timedelta(seconds=-60), 16),
        (timedelta(minutes=30), 6),
    ]
    assert profile_end(sent) == NOW + timedelta(hours=1)
    end = NOW + timedelta(hours=1)
    flat = [Period(NOW, 16)]
    assert not above_somewhere(held, flat, NOW, end)  # the held one steps down later: never above
    assert above_somewhere(flat, held, NOW, end)  # the flat one is above from the step on
    assert not above_somewhere(flat, held, NOW, NOW + timedelta(minutes=30))  # ...not before it
    assert not above_somewhere([Period(NOW, 16.04)], flat, NOW, end)  # 0.1 A rounding is no difference
    a_second_later = [Period(p.start + timedelta(seconds=1), p.current_a) for p in held]
    assert not above_somewhere(a_second_later, held, NOW, end)  # the same step, sent from a later plan


def test_capabilities_are_read_from_16_configuration_and_201_variables() -> None:
    """ChargeProfileMaxStackLevel & co. (1.6) and SmartChargingCtrlr variables (2.0.1) become Capabilities."""
    v16 = capabilities_from_configuration(
        {
            "configurationKey": [
                {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "8"},
                {"key": "ChargingScheduleMaxPeriods", "readonly": True, "value": "24"},
                {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Power"},
                {"key": "MaxChargingProfilesInstalled", "readonly": True, "value": "not a number"},
            ]
        }
    )
    assert v16 == Capabilities(8, 24, frozenset({ChargingRateUnit.WATT}), None)
    v201 = capabilities_from_variables(
        {
            "getVariableResult": [
                {"attributeStatus": "Accepted", "attributeValue": "2", "variable": {"name": "ProfileStackLevel"}},
                {"attributeStatus": "Accepted", "attributeValue": "A,W", "variable": {"name": "RateUnit"}},
                {"attributeStatus": "UnknownVariable", "variable": {"name": "PeriodsPerSchedule"}},
            ]
        }
    )
    assert v201.max_stack_level == 2 and v201.max_periods == Capabilities().max_periods
    assert v201.unit is ChargingRateUnit.AMPERE


# -- what meter values teach ------------------------------------------------------------------------------------


def sample(*values: tuple[str, str | None, float], at: datetime = NOW) -> MeterSample:
    return MeterSample(at, tuple(SampledValue(v, measurand, phase) for measurand, phase, v in values))


def test_measure_reads_per_phase_current_and_the_energy_register_of_the_newest_sample() -> None:
    """The newest sample wins; per-phase Current.Import maps to L1..L3; an unphased value is L1."""
    old = sample(("Current.Import", "L1", 30.0), at=NOW - timedelta(minutes=1))
    new = sample(
        ("Energy.Active.Import.Register", None, 1234.0),
        ("Current.Import", "L2", 7.5),
        ("Current.Import", "L3-N", 7.0),
    )
    measurement = measure([new, old])
    assert measurement is not None
    assert measurement.current_a == (0.0, 7.5, 7.0) and measurement.energy_wh == 1234.0
    single = measure([sample(("Current.Import", None, 12.0))])
    assert single is not None and single.current_a == (12.0, 0.0, 0.0)
    assert measure([]) is None


@pytest.mark.parametrize(
    ("learned", "offered", "drawn", "expected"),
    [
        (None, 32, 13.0, 13.0),  # draws well below the offer: its maximum is what it draws, rounded up
        (None, 32, 12.2, 13.0),
        (14.0, 14, 13.6, 15.0),  # takes all of the offer its estimate set: the estimate grows back
        (14.0, 14, 13.2, 14.0),  # takes nearly all but not quite: no change (no climbing past its limit)
        (14.0, 20, 13.8, 14.0),  # offered more than the estimate by the plan: nothing new learned
        (31.0, 31, 30.9, None),  # grows back to the hardware maximum: no estimate any more
        (14.0, 0, 0.0, 14.0),  # paused: says nothing
        (None, 16, 0.2, None),  # idle car: says nothing
        (None, 7, 4.2, 6.0),  # never below the 6 A minimum: that would pause it for good
    ],
)
def test_learned_maximum_follows_the_car(
    learned: float | None, offered: float, drawn: float, expected: float | None
) -> None:
    """acnportal-style ramp-down with hysteresis: down to the draw when 1 A below, up 1 A when it takes it all."""
    assert learn_max_current(learned, offered, drawn, 32.0) == expected


def test_phases_in_use_and_their_grid_phases() -> None:
    """A car drawing on one phase of a station wired L1->L2 loads grid L2 only."""
    assert phases_drawing((16.0, 0.3, 0.0)) == 1
    assert phases_drawing((0.0, 0.0, 0.0)) == 0
    assert grid_phases(1, (2, 3, 1)) == (2,)
    assert grid_phases(3, (2, 3, 1)) == (1, 2, 3)


# -- the failsafe default ----------------------------------------------------------------------------------------


def test_safe_share_divides_the_tightest_node_among_its_stations() -> None:
    """Every wired station under a node may draw its share at once: 40 A for 4 stations is 10 A each, whatever the
    site would allow; below 6 A the default is 0 (a pilot cannot say less)."""
    nodes = (GridNode("site", max_current_a=100), GridNode("feeder", "site", max_current_a=40))
    wirings = tuple(StationWiring(f"s{i}", "feeder") for i in range(4)) + (StationWiring("other", "site"),)
    config = GridConfig(nodes, wirings)
    assert safe_share(config, wirings[0]) == 10
    assert safe_share(config, wirings[-1]) == 20
    tight = GridConfig((GridNode("site", max_current_a=20),), tuple(StationWiring(f"s{i}", "site") for i in range(4)))
    assert safe_share(tight, tight.wirings[0]) == 0
