"""Prometheus metrics, on a registry of our own so several servers can live in one process (tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connected = Gauge("csms_stations_connected", "Charger connections open now", registry=self.registry)
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
