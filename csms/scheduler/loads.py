"""Planned load per node and phase: what the API shows as "plan" and "load vs limit"."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from csms.domain.grid import CapacityHold
from csms.scheduler.model import NodeLoad
from csms.scheduler.network import Network

__all__ = ["node_loads"]


def node_loads(
    network: Network, currents: Sequence[float], holds: Sequence[CapacityHold], when: datetime
) -> list[NodeLoad]:
    """Every node's load at ``when`` if ``network.sessions`` draw ``currents``: their draw plus fixed sessions,
    unmanaged load anywhere below the node and capacity held for bookings."""
    # Summed where each load hangs, then carried up the tree once (deepest nodes first).
    amps: dict[str, list[float]] = {node_id: [0.0, 0.0, 0.0] for node_id in network.nodes}
    watts: dict[str, float] = dict.fromkeys(network.nodes, 0.0)

    def add(node_id: str, phases: Sequence[int], current: float, voltage: float) -> None:
        if current:
            per_phase = amps[node_id]
            for phase in phases:
                per_phase[phase - 1] += current
            watts[node_id] += current * voltage * len(phases)

    for session, current in zip(network.sessions, currents, strict=True):
        add(session.node_id, session.phases, current, session.voltage_v)
    for session in network.fixed:
        add(session.node_id, session.phases, session.fixed_a or 0.0, session.voltage_v)
    for node in network.nodes.values():
        for phase, current in zip((1, 2, 3), node.unmanaged_a, strict=True):
            if phase in node.phases:
                add(node.id, (phase,), current, node.voltage_v)
    for hold in holds:
        if hold.start <= when < hold.end and hold.node_id in network.nodes:
            add(hold.node_id, hold.phases, hold.current_a, network.nodes[hold.node_id].voltage_v)
    for node_id in sorted(network.nodes, key=lambda n: -len(network.ancestors[n])):
        parent = network.nodes[node_id].parent_id
        if parent is not None:
            below, above = amps[node_id], amps[parent]
            above[0] += below[0]
            above[1] += below[1]
            above[2] += below[2]
            watts[parent] += watts[node_id]
    return [
        NodeLoad(
            node_id,
            when,
            (a[0], a[1], a[2]),
            network.nodes[node_id].current_limit_at(when),
            watts[node_id],
            network.nodes[node_id].power_limit_at(when),
        )
        for node_id, a in amps.items()
    ]
