"""Weighted progressive filling ("water filling") under linear constraints with non-negative coefficients.

Every session in the fill raises its current at its own speed (its weight) until it reaches its headroom or a
constraint it is under runs out of room, which stops every session under that constraint. The result is the
weighted max-min fair share: no session could get more without taking from one that has no more than it.

Events (a session reaching its headroom, a constraint filling up) are processed in order of the fill level at
which they happen, with a heap for the constraints, so a fill costs O(terms x log) rather than a scan of every
constraint at every step. That is what lets the real-time path re-plan ten thousand sessions per event. The
per-session work (speeds summed per constraint, the many sessions a site's constraint stops at once, the slack
they use) is done on the network's flat term arrays (``Network.terms``), in the same order a loop would add
and subtract, so the floats, and the plans, are those of a loop.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from csms.scheduler.network import Network

__all__ = ["progressive_fill"]

_TINY = 1e-12
_BATCH = 16  # sessions stopped at once from which array operations beat a loop


def progressive_fill(
    network: Network,
    slack: list[float],
    sessions: Sequence[int],
    headroom: Sequence[float] | npt.NDArray[np.float64],
    weights: Sequence[float] | npt.NDArray[np.float64],
) -> list[float]:
    """Increments for ``sessions`` (indices into ``network.sessions``); ``slack`` is updated in place.

    ``headroom[j]`` and ``weights[j]`` belong to ``sessions[j]``; a session with no headroom or no weight gets 0.
    Constraints whose slack is already <= 0 give their sessions nothing.
    """
    terms = network.session_constraints
    incidence = network.terms
    count = len(sessions)
    indices = np.asarray(sessions, dtype=np.intp)
    heads = np.asarray(headroom, dtype=np.float64)
    speeds = np.asarray(weights, dtype=np.float64)
    rising = (heads > _TINY) & (speeds > _TINY)
    active = np.flatnonzero(rising)
    # Where each session of the network sits in ``sessions`` (-1: not in this fill).
    position = np.full(len(network.sessions), -1, dtype=np.intp)
    position[indices] = np.arange(count, dtype=np.intp)

    # Per constraint: the summed speed of the sessions rising under it (added session by session, in order).
    ks, coefficients, owners = incidence.terms_of(indices[active])
    slope = np.bincount(ks, coefficients * speeds[active][owners], len(network.constraints))
    # Per constraint: slack at the level where its slope last changed (ref_slack at ref_level). A freeze only
    # lowers slopes, so a constraint's fill level only moves later: heap entries may be early, never late, and
    # are corrected when they reach the top instead of being re-pushed on every freeze.
    ref_slack = np.array(slack, dtype=np.float64)
    ref_level = np.zeros(len(slack))
    heap = [(max(r, 0.0) / s, k) for k, (s, r) in enumerate(zip(slope.tolist(), slack, strict=True)) if s > _TINY]
    heapq.heapify(heap)
    ratios = heads[active] / speeds[active]
    by_cap = np.lexsort((active, ratios))
    # Sessions by the level at which they reach their headroom: two lists, not a tuple per session (tens of
    # thousands of those per re-plan keep the garbage collector busy).
    cap_levels: list[float] = ratios[by_cap].tolist()
    capped: list[int] = active[by_cap].tolist()
    next_cap = 0
    increments = np.zeros(count)

    def freeze(j: int, level: float) -> None:
        rising[j] = False
        weight = weights[j]
        increments[j] = min(weight * level, headroom[j])
        for k, coefficient in terms[sessions[j]]:
            s = slope[k]
            ref_slack[k] -= s * (level - ref_level[k])
            ref_level[k] = level
            slope[k] = s - coefficient * weight

    def freeze_all(stopped: npt.NDArray[np.intp], level: float) -> None:
        """``freeze`` for each of ``stopped`` in turn, as array operations: per constraint, the slack is brought up
        to ``level`` once (later sessions in the batch add 0 to it) and the speeds come off its slope in order."""
        rising[stopped] = False
        increments[stopped] = np.minimum(speeds[stopped] * level, heads[stopped])
        touched, coefficients, owners = incidence.terms_of(indices[stopped])
        seen = np.zeros(len(slope), dtype=bool)
        seen[touched] = True
        once = np.flatnonzero(seen)  # not np.unique: its first call imports numpy.ma (~100 ms)
        ref_slack[once] -= slope[once] * (level - ref_level[once])
        ref_level[once] = level
        np.subtract.at(slope, touched, coefficients * speeds[stopped][owners])

    starts, members = incidence.starts, incidence.session
    while True:
        while heap:
            level, k = heap[0]
            s = slope[k]
            if s <= _TINY:
                heapq.heappop(heap)
                continue
            true_level = float(ref_level[k] + max(ref_slack[k], 0.0) / s)
            if true_level <= level + _TINY:
                break
            heapq.heapreplace(heap, (true_level, k))
        while next_cap < len(capped) and not rising[capped[next_cap]]:
            next_cap += 1
        cap_level = cap_levels[next_cap] if next_cap < len(capped) else None
        constraint_level = heap[0][0] if heap else None
        if cap_level is None and constraint_level is None:
            break
        if constraint_level is None or (cap_level is not None and cap_level <= constraint_level):
            assert cap_level is not None
            freeze(capped[next_cap], cap_level)
            next_cap += 1
            continue
        level, k = heapq.heappop(heap)
        # Those rising under it stop, in the order the constraint lists them (the order of the float updates
        # decides near-ties later on); one by one when few, as arrays when many (a site's constraint).
        under = position[members[starts[k] : starts[k + 1]]]
        under = under[under >= 0]
        stopped = under[rising[under]]
        if len(stopped) < _BATCH:
            for j in stopped.tolist():
                freeze(j, level)
        else:
            freeze_all(stopped, level)

    moved = np.flatnonzero(increments)
    touched, coefficients, owners = incidence.terms_of(indices[moved])
    left = np.array(slack, dtype=np.float64)
    np.subtract.at(left, touched, increments[moved][owners] * coefficients)
    slack[:] = left.tolist()
    return increments.tolist()
