"""Pure electric-vehicle battery model: how much current an EV draws for an offered limit.

The model is deliberately simple but has the features smart-charging tests need:
- no charging at all below the IEC 61851 minimum of 6 A offered (the EV pauses),
- a per-phase current cap and 1- or 3-phase charging,
- a linear taper above `taper_soc` down to `min_taper_current_a` at 100 % SoC.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "MIN_CHARGE_CURRENT_A",
    "ChargeStep",
    "EVSpec",
    "EVState",
    "charge",
    "draw_current",
    "taper_limit_a",
]

#: Below this offered current (A per phase) an AC EV cannot charge (IEC 61851-1 PWM minimum).
MIN_CHARGE_CURRENT_A = 6.0

#: Integration step: taper changes the draw while charging, so long steps are split up.
_SUBSTEP_S = 10.0
_SOC_EPSILON = 1e-9


@dataclass(frozen=True)
class EVSpec:
    """Static properties of a vehicle model."""

    name: str = "generic"
    capacity_kwh: float = 60.0
    max_current_a: float = 16.0
    phases: int = 3
    voltage: float = 230.0
    taper_soc: float = 0.8
    min_taper_current_a: float = 1.0

    def __post_init__(self) -> None:
        if self.capacity_kwh <= 0:
            raise ValueError("capacity_kwh must be > 0")
        if self.phases not in (1, 2, 3):
            raise ValueError("phases must be 1, 2 or 3")
        if not 0 < self.taper_soc <= 1:
            raise ValueError("taper_soc must be in (0, 1]")

    def power_w(self, current_a: float, phases: int | None = None) -> float:
        """Power drawn at `current_a` per phase."""
        return current_a * self.voltage * (phases or self.phases)


def taper_limit_a(spec: EVSpec, soc: float) -> float:
    """Highest current the battery accepts at this SoC (0 when full)."""
    if soc >= 1.0:
        return 0.0
    if soc <= spec.taper_soc:
        return spec.max_current_a
    # Linear from max current at taper_soc down to the small current at 100 %.
    frac = (soc - spec.taper_soc) / (1.0 - spec.taper_soc)
    return spec.max_current_a - frac * (spec.max_current_a - spec.min_taper_current_a)


def draw_current(
    spec: EVSpec, soc: float, offered_a: float | None, draw_factor: float = 1.0, *, target_soc: float = 1.0
) -> float:
    """Current per phase the EV draws for an offered limit (None = no limit but the EV's own).

    The EV stops drawing once its state of charge reaches ``target_soc`` (the driver's charge limit)."""
    if offered_a is not None and offered_a < MIN_CHARGE_CURRENT_A:
        return 0.0
    if soc >= target_soc - _SOC_EPSILON:
        return 0.0
    limit = spec.max_current_a if offered_a is None else min(offered_a, spec.max_current_a)
    return max(0.0, min(limit, taper_limit_a(spec, soc)) * draw_factor)


@dataclass(frozen=True)
class EVState:
    """A vehicle at a point in time: its spec, state of charge (0..1) and energy taken so far.

    ``target_soc`` is the charge limit the driver set in the car: it stops drawing there (1.0 = full).
    """

    spec: EVSpec
    soc: float
    delivered_wh: float = 0.0
    target_soc: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.target_soc <= 1:
            raise ValueError("target_soc must be in (0, 1]")

    @property
    def full(self) -> bool:
        return self.soc >= 1.0 - _SOC_EPSILON

    @property
    def satisfied(self) -> bool:
        """The car reached its charge limit and draws no more."""
        return self.soc >= self.target_soc - _SOC_EPSILON

    @property
    def wanted_wh(self) -> float:
        """Energy the car still takes before it reaches its charge limit."""
        return max(0.0, self.target_soc - self.soc) * self.spec.capacity_kwh * 1000.0

    @property
    def soc_percent(self) -> float:
        return round(self.soc * 100.0, 1)


@dataclass(frozen=True)
class ChargeStep:
    """Result of charging for a while: the new state, energy delivered and the final draw."""

    state: EVState
    energy_wh: float
    current_a: float
    phases: int


def charge(
    state: EVState,
    offered_a: float | None,
    seconds: float,
    *,
    offered_phases: int | None = None,
    draw_factor: float = 1.0,
) -> ChargeStep:
    """Integrate charging at the offered limit over `seconds` of simulated time."""
    spec = state.spec
    phases = min(spec.phases, offered_phases) if offered_phases else spec.phases
    soc = state.soc
    target = state.target_soc
    energy = 0.0
    current = draw_current(spec, soc, offered_a, draw_factor, target_soc=target)
    remaining = max(0.0, seconds)
    capacity_wh = spec.capacity_kwh * 1000.0
    while remaining > 1e-9 and current > 0:
        dt = min(_SUBSTEP_S, remaining)
        wh = spec.power_w(current, phases) * dt / 3600.0
        wh = min(wh, max(0.0, target - soc) * capacity_wh)
        energy += wh
        soc = min(target, soc + wh / capacity_wh)
        remaining -= dt
        current = draw_current(spec, soc, offered_a, draw_factor, target_soc=target)
    new_state = replace(state, soc=soc, delivered_wh=state.delivered_wh + energy)
    return ChargeStep(new_state, energy, current, phases)
