"""Which planned limits are worth sending: a profile write costs a round trip and charger flash wear.

Decreases always go out (they keep a limit), and go out first. Increases go out only when they are worth it
(at least ``threshold_a`` more, or a paused session resuming) and the EVSE has not been written to within
``min_interval``; a held-back increase only leaves capacity unused, so it never breaks a limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from csms.scheduler.model import Plan

__all__ = ["ChangePolicy", "LimitChange", "select_changes"]

_EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class ChangePolicy:
    threshold_a: float = 1.0  # smaller increases are not worth a write
    # Between increases to one EVSE. 2 min rather than 5: benchmarks/ (10 days, with SessionDemand.max_now_a) +0.4 /
    # +0.6 point of the optimum's energy at per-phase / power 20% limits, +0.2 / +0.3 at 30%, for 0.1 more profile
    # write per EVSE-hour (2.0-2.2 in all, the target allows 12).
    min_interval: timedelta = timedelta(minutes=2)

    def rested(self, written: datetime | None, now: datetime) -> bool:
        """Whether an EVSE last written at ``written`` (None: never) may be raised at ``now``."""
        return written is None or now - written >= self.min_interval

    def held_at(self, offered: float | None, written: datetime | None, now: datetime) -> float | None:
        """What a session is planned at most at until it may be raised (``SessionDemand.max_now_a``): the limit its
        station accepted (``offered``) while not rested, 0 for one paused (its resume is held back too); None when
        rested or never limited."""
        return None if offered is None or self.rested(written, now) else offered


@dataclass(frozen=True, slots=True)
class LimitChange:
    session_id: str
    current_a: float
    previous_a: float | None  # None: the station has no limit of ours for this session yet

    @property
    def is_decrease(self) -> bool:
        return self.previous_a is not None and self.current_a < self.previous_a - _EPSILON


def select_changes(
    plan: Plan,
    offered: Mapping[str, float | None],
    last_written: Mapping[str, datetime],
    now: datetime,
    policy: ChangePolicy = ChangePolicy(),
) -> tuple[list[LimitChange], list[LimitChange]]:
    """(decreases, increases) to send for ``plan``, given what each session's station has been told.

    ``offered`` maps session id -> the limit its station accepted last (None or missing: none yet);
    ``last_written`` maps session id -> when it was last written.
    """
    decreases: list[LimitChange] = []
    increases: list[LimitChange] = []
    for session_id, session_plan in plan.sessions.items():
        wanted = session_plan.current_a
        previous = offered.get(session_id)
        if previous is None:
            # A session we never limited runs at the hardware maximum: telling it anything is a decrease.
            decreases.append(LimitChange(session_id, wanted, None))
        elif wanted < previous - _EPSILON:
            decreases.append(LimitChange(session_id, wanted, previous))
        elif wanted > previous + _EPSILON:
            resuming = previous <= _EPSILON
            worth_it = resuming or wanted - previous >= policy.threshold_a - _EPSILON
            if worth_it and policy.rested(last_written.get(session_id), now):
                increases.append(LimitChange(session_id, wanted, previous))
    return decreases, increases
