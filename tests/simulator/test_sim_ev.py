"""Pure tests of the EV battery model."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from simulator.ev import EVSpec, EVState, charge, draw_current, taper_limit_a

EV = EVSpec(capacity_kwh=100, max_current_a=16, phases=3, voltage=230)


@pytest.mark.parametrize(
    ("soc", "offered", "expected"),
    [
        (0.5, None, 16.0),  # no limit: the EV's own maximum
        (0.5, 32.0, 16.0),  # offered above the EV maximum
        (0.5, 10.0, 10.0),  # offered below: follows the limit
        (0.5, 6.0, 6.0),  # the minimum still charges
        (0.5, 5.9, 0.0),  # below 6 A the EV pauses
        (0.9, 32.0, 8.5),  # taper: halfway between 16 A at 80 % and 1 A at 100 %
        (1.0, 32.0, 0.0),  # full
    ],
)
def test_draw_current(soc: float, offered: float | None, expected: float) -> None:
    """The EV draws min(offered, own max, taper) and nothing below 6 A offered."""
    assert draw_current(EV, soc, offered) == pytest.approx(expected)


def test_energy_integrates_over_time() -> None:
    """One hour at 16 A on three phases of 230 V delivers 11.04 kWh and raises SoC accordingly."""
    step = charge(EVState(EV, 0.1), 16.0, 3600)
    assert step.energy_wh == pytest.approx(11040)
    assert step.state.soc == pytest.approx(0.2104)
    assert step.current_a == 16.0


def test_single_phase_and_phase_limit() -> None:
    """A 1-phase EV draws 230 V x current; an offer limited to 1 phase cuts a 3-phase EV's power."""
    one_phase = EVSpec(capacity_kwh=40, max_current_a=32, phases=1)
    assert charge(EVState(one_phase, 0.2), 32.0, 3600).energy_wh == pytest.approx(7360)
    limited = charge(EVState(EV, 0.2), 16.0, 3600, offered_phases=1)
    assert limited.phases == 1 and limited.energy_wh == pytest.approx(3680)


def test_draw_factor_models_an_ev_drawing_less() -> None:
    """A draw factor below 1 scales the current (a non-ideal EV)."""
    assert draw_current(EV, 0.5, 16.0, draw_factor=0.5) == 8.0


def test_full_battery_stops_and_taper_bounds() -> None:
    """Charging stops at 100 % SoC; taper gives the small current just below full."""
    step = charge(EVState(EV, 0.99), 32.0, 10 * 3600)
    assert step.state.full and step.current_a == 0.0
    assert step.energy_wh == pytest.approx(1000, rel=1e-6)
    assert taper_limit_a(EV, 0.9999) == pytest.approx(1.0, abs=0.01)


@given(
    soc=st.floats(min_value=0.0, max_value=1.0),
    offered=st.floats(min_value=0.0, max_value=64.0),
    seconds=st.floats(min_value=0.0, max_value=48 * 3600),
)
def test_energy_conservation(soc: float, offered: float, seconds: float) -> None:
    """Energy delivered equals the SoC gain and never exceeds what the battery can still take."""
    step = charge(EVState(EV, soc), offered, seconds)
    capacity_wh = EV.capacity_kwh * 1000
    assert 0.0 <= step.energy_wh <= (1.0 - soc) * capacity_wh + 1e-6
    assert step.state.soc == pytest.approx(soc + step.energy_wh / capacity_wh, abs=1e-9)
    assert step.state.soc <= 1.0


def test_charge_limit_stops_the_draw_at_the_target_soc() -> None:
    """A car with a charge limit draws nothing once there, and charging never takes it past the limit."""
    state = EVState(EV, 0.5, target_soc=0.6)
    assert state.wanted_wh == pytest.approx(10_000)
    assert draw_current(EV, 0.6, 32.0, target_soc=0.6) == 0.0
    step = charge(state, 16.0, 3 * 3600)
    assert step.energy_wh == pytest.approx(10_000) and step.state.soc == pytest.approx(0.6)
    assert step.state.satisfied and not step.state.full and step.current_a == 0.0
    with pytest.raises(ValueError):
        EVState(EV, 0.5, target_soc=0.0)


@given(
    soc=st.floats(min_value=0.0, max_value=1.0),
    target=st.floats(min_value=0.05, max_value=1.0),
    seconds=st.floats(min_value=0.0, max_value=48 * 3600),
)
def test_energy_never_exceeds_what_the_car_wants(soc: float, target: float, seconds: float) -> None:
    """Whatever the offer and the time, a car takes at most the energy up to its charge limit."""
    state = EVState(EV, soc, target_soc=target)
    step = charge(state, 32.0, seconds)
    assert step.energy_wh <= state.wanted_wh + 1e-6
    assert step.state.soc <= max(soc, target) + 1e-9
