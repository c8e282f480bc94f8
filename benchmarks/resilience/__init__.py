"""Faults and durability at scale: kill -9 runs, reconnect storms, soak, churn and half-open connections.

Every run starts ``python -m csms serve`` as its own process on a file database and drives it over loopback
websockets with lightweight raw OCPP-J clients; ``benchmarks/run_resilience.py`` is the entry point.
"""
