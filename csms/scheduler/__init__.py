"""Grid-limit smart charging, pure: ``plan(snapshot, now) -> Plan``.

Two algorithms share one model (``model.py``) and one compiled view of the site tree (``network.py``):

- ``realtime``: the default. Deadline- and priority-aware progressive filling, fast enough to re-plan ten
  thousand sessions on every event.
- ``optimal``: a linear program solved with HiGHS over the whole horizon; for planning ahead and as the yardstick
  the real-time path is measured against.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from csms.scheduler.model import Plan, SchedulerSettings, Snapshot

__all__ = ["Algorithm", "plan"]


class Algorithm(StrEnum):
    REALTIME = "realtime"
    OPTIMAL = "optimal"


def plan(
    snapshot: Snapshot,
    now: datetime,
    settings: SchedulerSettings | None = None,
    algorithm: Algorithm = Algorithm.REALTIME,
) -> Plan:
    """Current limits for every controllable session in ``snapshot`` that keep every node within its limits.

    Raises:
        GridError: the snapshot's tree or sessions are inconsistent.
    """
    settings = settings or SchedulerSettings()
    if algorithm is Algorithm.OPTIMAL:
        # Imported here: HiGHS loads a native library that the real-time path never needs.
        from csms.scheduler.optimal import plan_optimal

        return plan_optimal(snapshot, now, settings)
    from csms.scheduler.realtime import plan_realtime

    return plan_realtime(snapshot, now, settings)
