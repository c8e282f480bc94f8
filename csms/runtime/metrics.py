"""Prometheus metrics, on a registry of our own so several servers can live in one process (tests)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connected = Gauge("csms_stations_connected", "Charger connections open now", registry=self.registry)
        # Leak checks after churn (benchmarks/run_resilience.py churn): both must come back to their idle values.
        self.sessions = Gauge("csms_sessions_registered", "Station sessions in the registry", registry=self.registry)
        self.tasks = Gauge("csms_asyncio_tasks", "asyncio tasks alive in the event loop", registry=self.registry)
        self.tasks.set_function(_task_count)
        self.refused = Counter(
            "csms_connections_refused",
            "Handshakes refused (bad identity, no subprotocol)",
            registry=self.registry,
        )
        self.commands = Counter(
            "csms_commands",
            "Operator commands sent to chargers",
            ["action", "outcome"],
            registry=self.registry,
        )

        # Basic-auth password checks by how they were decided: "argon2" (one slow verification; a login may need two
        # when a 1.6 key could be hex), "remembered" (this process verified the password before), "joined" (waited
        # for the same password's verification already running for another login).
        self.password_checks = Counter(
            "csms_password_checks",
            "Basic-auth password checks, by how they were decided",
            ["how"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # rendered outside the event loop (no loop running in this thread)
        return float("nan")
