"""Weighted progressive filling ("water filling") under linear constraints with non-negative coefficients.

Every session in the fill raises its current at its own speed (its weight) until it reaches its headroom or a
constraint it is under runs out of room, which stops every session under that constraint. The result is the
weighted max-min fair share: no session could get more without taking from one that has no more than it.

Events (a session reaching its headroom, a constraint filling up) are processed in order of the fill level at
which they happen, with a heap for the constraints, so a fill costs O(terms x log) rather than a scan of every
constraint at every step. That is what lets the real-time path re-plan ten thousand sessions per event.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from csms.scheduler.network import Network

__all__ = ["progressive_fill"]

_TINY = 1e-12


def progressive_fill(
    network: Network,
    slack: list[float],
    sessions: Sequence[int],
    headroom: Sequence[float],
    weights: Sequence[float],
) -> list[float]:
    """Increments for ``sessions`` (indices into ``network.sessions``); ``slack`` is updated in place.

    ``headroom[j]`` and ``weights[j]`` belong to ``sessions[j]``; a session with no headroom or no weight gets 0.
    Constraints whose slack is already <= 0 give their sessions nothing.
    """
    terms = network.session_constraints
    constraints = network.constraints
    increments = [0.0] * len(sessions)
    position = [-1] * len(network.sessions)
    for j, index in enumerate(sessions):
        position[index] = j
    frozen = [True] * len(sessions)
    slope = [0.0] * len(constraints)
    for j, index in enumerate(sessions):
        if headroom[j] > _TINY and weights[j] > _TINY:
            frozen[j] = False
            weight = weights[j]
            for k, coefficient in terms[index]:
                slope[k] += coefficient * weight

    # Per constraint: slack at the level where its slope last changed (ref_slack at ref_level). A freeze only
    # lowers slopes, so a constraint's fill level only moves later: heap entries may be early, never late, and
    # are corrected when they reach the top instead of being re-pushed on every freeze.
    ref_slack = list(slack)
    ref_level = [0.0] * len(constraints)
    heap = [(max(ref_slack[k], 0.0) / s, k) for k, s in enumerate(slope) if s > _TINY]
    heapq.heapify(heap)
    caps = sorted((headroom[j] / weights[j], j) for j in range(len(sessions)) if not frozen[j])
    next_cap = 0

    def freeze(j: int, level: float) -> None:
        frozen[j] = True
        weight = weights[j]
        increments[j] = min(weight * level, headroom[j])
        for k, coefficient in terms[sessions[j]]:
            s = slope[k]
            ref_slack[k] -= s * (level - ref_level[k])
            ref_level[k] = level
            slope[k] = s - coefficient * weight

    while True:
        while heap:
            level, k = heap[0]
            s = slope[k]
            if s <= _TINY:
                heapq.heappop(heap)
                continue
            true_level = ref_level[k] + max(ref_slack[k], 0.0) / s
            if true_level <= level + _TINY:
                break
            heapq.heapreplace(heap, (true_level, k))
        while next_cap < len(caps) and frozen[caps[next_cap][1]]:
            next_cap += 1
        cap_level = caps[next_cap][0] if next_cap < len(caps) else None
        constraint_level = heap[0][0] if heap else None
        if cap_level is None and constraint_level is None:
            break
        if constraint_level is None or (cap_level is not None and cap_level <= constraint_level):
            assert cap_level is not None
            freeze(caps[next_cap][1], cap_level)
            next_cap += 1
            continue
        level, k = heapq.heappop(heap)
        for index in constraints[k].members:
            j = position[index]
            if j >= 0 and not frozen[j]:
                freeze(j, level)

    for j, index in enumerate(sessions):
        if increments[j]:
            for k, coefficient in terms[index]:
                slack[k] -= increments[j] * coefficient
    return increments
