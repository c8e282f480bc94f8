"""What a charging session tells us about the car: its needs, what it draws, and what it can take.

Pure rules used by smart charging: reading per-phase current from meter samples, how many phases a car
charges on, and the acnportal-style "ramp-down" estimate of a car's real maximum when it draws less than it is
offered (on-board charger limits, taper near full).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from csms.domain.grid import IEC_MIN_CURRENT_A
from csms.domain.metering import MeterSample, energy_wh

__all__ = [
    "PHASE_IN_USE_A",
    "ChargingNeeds",
    "Measurement",
    "learn_max_current",
    "measure",
    "phases_drawing",
]

CURRENT_IMPORT = "Current.Import"
# A phase carrying less than this is not in use (meters show a few tenths of an amp of noise and standby).
PHASE_IN_USE_A = 1.0
# acnportal's SimpleRampdown: a car drawing at least 1 A less than offered is taken to be unable to take more.
RAMPDOWN_MARGIN_A = 1.0


@dataclass(frozen=True, slots=True)
class ChargingNeeds:
    """What the driver or the car asked for (2.0.1 NotifyEVChargingNeeds, a booking, the API)."""

    energy_wh: float | None = None  # for the whole session
    departure: datetime | None = None
    max_current_a: float | None = None  # the car's own limit per phase
    min_current_a: float | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    """The latest reading of one EVSE: current per phase L1..L3 (station side) and the energy register."""

    timestamp: datetime
    current_a: tuple[float, float, float] | None
    energy_wh: float | None


_PHASE_INDEX = {"L1": 0, "L2": 1, "L3": 2, "L1-N": 0, "L2-N": 1, "L3-N": 2}


def measure(samples: Iterable[MeterSample]) -> Measurement | None:
    """The newest sample's per-phase import current and energy register, or None without any sample.

    A charger that reports Current.Import without a phase reports one figure for the car: it is taken as the
    current on L1 (single-phase chargers) unless per-phase values are given too.
    """
    newest = max(samples, key=lambda s: s.timestamp, default=None)
    if newest is None:
        return None
    per_phase = [0.0, 0.0, 0.0]
    unphased: float | None = None
    seen = False
    for value in newest.values:
        if value.measurand != CURRENT_IMPORT or value.value is None:
            continue
        if value.phase is None:
            unphased = value.value
        elif value.phase in _PHASE_INDEX:
            per_phase[_PHASE_INDEX[value.phase]] = value.value
            seen = True
    if not seen and unphased is not None:
        per_phase[0] = unphased
        seen = True
    current = (per_phase[0], per_phase[1], per_phase[2]) if seen else None
    return Measurement(newest.timestamp, current, energy_wh(newest))


def phases_drawing(current_a: tuple[float, float, float]) -> int:
    """How many phases carry current; 0 when the car draws nothing."""
    return sum(1 for amps in current_a if amps >= PHASE_IN_USE_A)


def learn_max_current(learned: float | None, offered: float, drawn: float, hardware_max: float) -> float | None:
    """The car's estimated maximum after seeing it draw ``drawn`` A while offered ``offered`` A.

    Drawing at least a margin below what it could take (the offer, or the estimate if lower) means the car cannot
    take more right now: its maximum is what it draws, rounded up. It grows back by one margin only when the car
    takes (nearly) all of an offer that the estimate itself set (a bigger offer it does not take says the car
    is at its limit): with the same threshold both ways the estimate
    would climb past the car's limit, drop back and climb again, a profile write each time. None means "no
    estimate, use the hardware maximum".
    """
    if offered <= 0 or drawn < PHASE_IN_USE_A:
        return learned  # a paused or idle car says nothing about its maximum
    cap = hardware_max if learned is None else learned
    could = min(offered, cap)
    if drawn < could - RAMPDOWN_MARGIN_A:
        # Never below the pilot's minimum: a maximum under 6 A would pause the car for good (a paused car draws
        # nothing, so the estimate could never grow back); offered 6 A it just draws what it can.
        return float(min(hardware_max, max(IEC_MIN_CURRENT_A, math.ceil(drawn - 1e-6))))
    held_by_estimate = learned is not None and abs(offered - learned) <= RAMPDOWN_MARGIN_A / 2
    if learned is not None and held_by_estimate and drawn >= could - RAMPDOWN_MARGIN_A / 2:
        raised = learned + RAMPDOWN_MARGIN_A
        return None if raised >= hardware_max else raised
    return learned
