"""Scheduler quality and speed benchmark: a synthetic workplace day, a fleet simulator, baselines and metrics.

- ``workload``: sessions shaped like the ACN workplace data (research/scheduling-anchors.md §6), EU variant,
  on a site -> feeders -> stations tree.
- ``fleet_sim``: a discrete-time day of cars obeying (or not) the limits a controller writes; the controller
  mimics our runtime (re-plan on events and every slot, ``select_changes`` decides the writes).
- ``baselines``: uncontrolled, round robin (equal share), FCFS, EDF, LLF as acnportal defines them.
- ``offline``: the clairvoyant LP optimum of a whole day (the yardstick).
- ``metrics``: energy, fairness, violations, writes, re-plan time.

Entry point: ``python -m benchmarks.run_scheduling [--quick]``.
"""
