"""Knobs of a simulated day: time step, latencies, the controller's cadence and what it knows at boot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from csms.scheduler.changes import ChangePolicy
from csms.scheduler.model import Plan, SchedulerSettings, Snapshot

__all__ = ["Scheduler", "SimConfig"]

# Every algorithm, ours and the baselines, is driven through this one signature.
Scheduler = Callable[[Snapshot, datetime, SchedulerSettings], Plan]


@dataclass(frozen=True, slots=True)
class SimConfig:
    step_s: float = 10.0
    # From writing a profile to the car drawing the new current (research §5: plan on 5-30 s).
    apply_latency_s: float = 10.0
    # Events (arrival, departure, a rejection, a station caught ignoring its limit) re-plan at most this often;
    # one step means "on the next step", so the apply window is latency + one step.
    debounce_s: float = 10.0
    # TxDefaultProfile every obeying station got at boot: a new session waits at 0 A for its first plan rather
    # than starting at the hardware maximum before anyone has made room for it.
    default_limit_a: float = 0.0
    settings: SchedulerSettings = field(default_factory=SchedulerSettings)
    policy: ChangePolicy = field(default_factory=ChangePolicy)
    # Stations that reject profiles already rejected the TxDefaultProfile at boot, so the CSMS knows them.
    know_rejecting_at_boot: bool = True
    # An unsteerable session is planned at its metered draw + 1 A (it only draws less as its car fills), as the
    # runtime does since 2fe653a. True: at its hardware maximum for the whole session, even once the car has
    # stopped (the runtime's earlier rule).
    fixed_at_hardware_max: bool = False
    # The CSMS learns a car's phases from its first meter values and assumes all three until then (a paused car
    # never shows them). True: it knows them from the start (e.g. ISO 15118 / NotifyEVChargingNeeds).
    phases_known_at_start: bool = False
    # A new session whose phases are unknown is probed for this long after it plugs in (SessionDemand.probing:
    # admitted first so its first meter values show its phases), as the runtime does by default. 0: no probe.
    phase_probe_s: float = 300.0
    # Check every plan against the limits as the controller stated them (catches infeasible plans directly).
    check_plans: bool = True
    record: bool = True  # keep the site's load per step (for plots)
    limit_changes: tuple[tuple[float, float], ...] = ()  # (seconds after the start, new site limit)
    end_s: float | None = None  # stop here (default: the last departure)

    @property
    def latency_steps(self) -> int:
        return round(self.apply_latency_s / self.step_s)

    @property
    def window_steps(self) -> int:
        """Steps after an unforeseeable event (arrival, limit change) in which an overload is excused."""
        return self.latency_steps + max(1, round(self.debounce_s / self.step_s))
