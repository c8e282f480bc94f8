"""What a car draws: the pilot, its on-board charger, a two-stage battery (taper above 80%) and its target.

Like acnportal's ``Linear2StageBattery``: the car takes its full rate up to 80% state of charge, then a rate
falling linearly to zero at 100%. A pilot below 6 A cannot be signalled (IEC 61851), so the car pauses.
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.scheduling.workload import VOLTAGE_V, Session, Workload
from csms.domain.grid import IEC_MIN_CURRENT_A

__all__ = ["TAPER_SOC", "car_draw", "standalone_draws"]

TAPER_SOC = 0.8


def car_draw(
    pilot_a: np.ndarray,
    soc: np.ndarray,
    car_max_a: np.ndarray,
    remaining_wh: np.ndarray,
    watts_per_amp: np.ndarray,
    step_h: float,
) -> np.ndarray:
    """Amps per phase each car draws for one step (the rate is held for the step: steps are short)."""
    taper = car_max_a * np.clip((1.0 - soc) / (1.0 - TAPER_SOC), 0.0, 1.0)
    signalled = np.where(pilot_a >= IEC_MIN_CURRENT_A - 1e-9, pilot_a, 0.0)
    # A car stops at its target: the last step only tops it up.
    to_target = np.maximum(remaining_wh, 0.0) / (watts_per_amp * step_h)
    draw: np.ndarray = np.minimum(np.minimum(signalled, taper), to_target)
    return draw


def standalone_draws(workload: Workload, session: Session, step_s: float) -> tuple[int, np.ndarray]:
    """(first step, draw per step) of ``session`` at its EVSE's maximum pilot all its stay, alone on the site."""
    first = math.ceil(session.arrival_s / step_s - 1e-9)
    last = math.ceil(session.departure_s / step_s - 1e-9)
    pilot = np.array([workload.station_of(session).max_current_a])
    car_max = np.array([session.car_max_a])
    watts = np.array([VOLTAGE_V * session.car_phases])
    delivered = 0.0
    draws = np.zeros(max(last - first, 0))
    for k in range(draws.size):
        soc = np.array([session.initial_soc + delivered / session.capacity_wh])
        remaining = np.array([session.requested_wh - delivered])
        draw = float(car_draw(pilot, soc, car_max, remaining, watts, step_s / 3600.0)[0])
        if draw <= 0.0:
            break
        draws[k] = draw
        delivered += draw * watts[0] * step_s / 3600.0
    return first, draws
