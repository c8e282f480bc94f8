"""Building blocks for the scheduler's table-driven tests: one way to write a session demand and read a plan."""

from __future__ import annotations

from datetime import datetime, timedelta

from csms.scheduler.model import Plan, SessionDemand

__all__ = ["THREE", "currents", "demand"]

THREE = (1, 2, 3)


def demand(
    sid: str,
    now: datetime,
    stay: timedelta,
    *,
    node: str = "site",
    phases: tuple[int, ...] = THREE,
    max_a: float = 32,
    energy_wh: float | None,
    **kwargs: object,
) -> SessionDemand:
    """A session that arrived half an hour before ``now`` and leaves ``stay`` after it."""
    return SessionDemand(
        sid,
        node,
        phases,
        max_a,
        now - timedelta(minutes=30),
        energy_wh=energy_wh,
        departure=now + stay,
        **kwargs,  # type: ignore[arg-type]
    )


def currents(result: Plan) -> dict[str, float]:
    """Each session's current in the plan's first period."""
    return {sid: p.current_a for sid, p in result.sessions.items()}
