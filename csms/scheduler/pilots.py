"""From continuous currents to what a pilot signal can say: 0 or [min, max] in whole pilot steps.

IEC 61851 cannot signal less than 6 A, and most EVSEs step their pilot in whole amps. Rounding every session
down keeps every limit but wastes the fractions; rounding up could break a limit. So: round down, pause what
falls below its minimum, then hand the freed steps back in order of urgency wherever every constraint the
session is under still has room.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from csms.scheduler.network import Network

__all__ = ["round_to_pilots", "take_if_room"]

# Currents are compared with this tolerance so that 15.999999 A from a solver counts as 16 A.
EPSILON = 1e-6
_MARGIN = 1e-9
_FEW = 64  # sessions below which a loop over them all is as quick as sorting some out


def round_to_pilots(
    network: Network,
    rates: Sequence[float],
    capacities: Sequence[float],
    order: Sequence[int],
    ceilings: Sequence[float] | None = None,
) -> list[float]:
    """Pilot currents for ``network.sessions`` close to ``rates`` that load no constraint beyond ``capacities``.

    ``rates`` (one per session) should themselves fit ``capacities``. The steps that rounding frees go to the
    largest remainders first, ties to the most urgent (``order`` lists session indices, most urgent first). A
    session whose rate is 0 stays at 0. With ``ceilings`` (what each session could use), room still left after
    rounding is handed out too, in whole steps and in the same order, so no session that could use more is
    denied the next step it fits (even if it can use only part of that step: it draws what it can).
    """
    sessions = network.sessions
    floored = _floor_to_pilots(
        np.asarray(rates, dtype=np.float64),
        np.array([s.pilot_step_a for s in sessions], dtype=np.float64),
        np.array([s.min_current_a for s in sessions], dtype=np.float64),
    )
    rounded: list[float] = floored.tolist()
    used = network.terms.sums(floored, len(capacities))
    slack = [capacity - load for capacity, load in zip(capacities, used, strict=True)]
    # Largest remainder first: 15.99997 A deserves the freed step more than 16.00003 A does; ties in ``order``
    # (the sort is stable). Those that rounding did not lower are left out up front.
    lowered = [i for i in order if not (rates[i] <= EPSILON or rounded[i] >= rates[i] - EPSILON)]
    for i in sorted(lowered, key=lambda i: rounded[i] - rates[i]):
        wanted = rates[i]
        session = sessions[i]
        step = session.pilot_step_a
        ceiling = min(math.ceil(wanted / step - EPSILON) * step, session.max_current_a)
        target = max(ceiling, session.min_current_a) if rounded[i] == 0 else ceiling
        increase = target - rounded[i]
        if increase <= EPSILON or target > session.max_current_a + EPSILON:
            continue
        if take_if_room(slack, network.session_constraints[i], increase):
            rounded[i] = target
    if ceilings is not None:
        _top_up(network, rounded, slack, order, ceilings)
    return rounded


def take_if_room(slack: list[float], terms: Sequence[tuple[int, float]], current: float) -> bool:
    """Whether every constraint in ``terms`` (constraint index, coefficient) has room for ``current`` in ``slack``;
    if so, that room is taken."""
    if not all(slack[k] >= current * coefficient - EPSILON for k, coefficient in terms):
        return False
    for k, coefficient in terms:
        slack[k] -= current * coefficient
    return True


def _top_up(
    network: Network, currents: list[float], slack: list[float], order: Sequence[int], ceilings: Sequence[float]
) -> None:
    for i in _worth_trying(network, currents, slack, order, ceilings):
        session = network.sessions[i]
        step = session.pilot_step_a
        headroom = session.max_current_a - currents[i]
        wanted = min(ceilings[i], session.max_current_a) - currents[i]
        if wanted <= EPSILON or step <= 0:
            continue
        # A car that can use part of a step is offered the whole step (it draws what it can); a maximum off the
        # step grid is a signal of its own.
        wanted = min(math.ceil(wanted / step - EPSILON) * step, headroom)
        terms = network.session_constraints[i]
        room = wanted
        for k, coefficient in terms:
            if coefficient > 0 and slack[k] < room * coefficient:
                room = slack[k] / coefficient
                if room < wanted - EPSILON and room / step + EPSILON < 1:
                    break  # not even one step fits: most sessions on a busy site stop here
        increase = wanted if room >= wanted - EPSILON else math.floor(room / step + EPSILON) * step
        if currents[i] == 0 and increase < session.min_current_a - EPSILON:
            continue
        if increase > EPSILON:
            for k, coefficient in terms:
                slack[k] -= increase * coefficient
            currents[i] += increase


def _worth_trying(
    network: Network, currents: list[float], slack: list[float], order: Sequence[int], ceilings: Sequence[float]
) -> list[int]:
    """``order`` without the sessions that ``_top_up`` would surely leave as they are: those under a constraint
    without room for one more step (on a busy site, the site's own: most sessions). Slack only shrinks as the top-up
    goes on, so the room each has now, computed for all at once, bounds what it would find; ``_MARGIN`` covers the
    rounding of these array operations against the loop's."""
    if len(order) < _FEW:
        return list(order)
    sessions = network.sessions
    indices = np.asarray(order, dtype=np.intp)
    step = np.array([sessions[i].pilot_step_a for i in order], dtype=np.float64)
    maximum = np.array([sessions[i].max_current_a for i in order], dtype=np.float64)
    current = np.asarray(currents, dtype=np.float64)[indices]
    terms, coefficients, owners = network.terms.terms_of(indices)
    room = np.full(len(order), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):  # a step <= 0 or a coefficient of 0: tried in the loop
        wanted = np.minimum(np.asarray(ceilings, dtype=np.float64)[indices], maximum) - current
        wanted = np.minimum(np.ceil(wanted / step - EPSILON) * step, maximum - current)
        positive = coefficients > 0
        np.minimum.at(room, owners[positive], np.asarray(slack)[terms[positive]] / coefficients[positive])
        room = np.minimum(room, wanted)
        hopeless = (room < wanted - EPSILON - _MARGIN) & (room / step + EPSILON < 1 - _MARGIN)
    return [i for i, skip in zip(order, hopeless.tolist(), strict=True) if not skip]


def _floor_to_pilots(
    rates: npt.NDArray[np.float64], steps: npt.NDArray[np.float64], minima: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Each rate down to its pilot step (as is with a step <= 0), 0 where that is below its minimum."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a step of 0: the rate as is
        floored = np.where(steps > 0, np.floor(rates / steps + EPSILON) * steps, rates)
    return np.where((floored >= minima - EPSILON) & (floored > 0), floored, 0.0)
