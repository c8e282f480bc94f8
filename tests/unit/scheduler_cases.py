"""Building blocks for the scheduler's table-driven tests: one way to write a session demand and read a plan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from csms.scheduler.model import Plan, SessionDemand

__all__ = ["THREE", "currents", "demand", "session_maker"]

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


def session_maker(now: datetime, energy_wh: float | None) -> Callable[..., SessionDemand]:
    """A test module's ``session(sid, ...)``: a session at ``now`` on "site", three phases, 32 A, wanting
    ``energy_wh`` and leaving 8 h after ``now`` unless told otherwise (``hours=`` or ``minutes=``)."""
    default_energy = energy_wh

    def session(
        sid: str,
        node: str = "site",
        phases: tuple[int, ...] = THREE,
        max_a: float = 32,
        energy_wh: float | None = default_energy,
        hours: float | None = None,
        minutes: float | None = None,
        **kwargs: object,
    ) -> SessionDemand:
        stay = (
            timedelta(hours=8)
            if hours is None and minutes is None
            else timedelta(hours=hours or 0, minutes=minutes or 0)
        )
        return demand(sid, now, stay, node=node, phases=phases, max_a=max_a, energy_wh=energy_wh, **kwargs)

    return session


def currents(result: Plan) -> dict[str, float]:
    """Each session's current in the plan's first period."""
    return {sid: p.current_a for sid, p in result.sessions.items()}
