"""Load per node and phase, planned or measured: what the API shows as "plan" and "load vs limit".

Both views add loads where they hang and carry them up the tree the same way (``add_unmanaged``, ``carry_up``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from csms.domain.grid import CapacityHold, GridNode, parents_first
from csms.scheduler.model import NodeLoad
from csms.scheduler.network import Network

__all__ = ["add_unmanaged", "carry_up", "node_loads"]


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
    add_unmanaged(network.nodes, amps, watts)
    for hold in holds:
        if hold.start <= when < hold.end and hold.node_id in network.nodes:
            add(hold.node_id, hold.phases, hold.current_a, network.nodes[hold.node_id].voltage_v)
    carry_up(network.nodes, amps, watts)
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


def add_unmanaged(
    nodes: Mapping[str, GridNode], amps: dict[str, list[float]], watts: dict[str, float] | None = None
) -> None:
    """Adds each node's unmanaged load (per phase it carries) to its own entry in ``amps`` (and ``watts``)."""
    for node in nodes.values():
        own = amps[node.id]
        for phase, current in zip((1, 2, 3), node.unmanaged_a, strict=True):
            if current and phase in node.phases:
                own[phase - 1] += current
                if watts is not None:
                    watts[node.id] += current * node.voltage_v


def carry_up(
    nodes: Mapping[str, GridNode], amps: dict[str, list[float]], watts: dict[str, float] | None = None
) -> None:
    """Adds every node's load into its parent's, deepest nodes first: afterwards each node's entry in ``amps``
    (L1..L3, and in ``watts``) holds the load of everything under it as well as its own."""
    for node_id in reversed(parents_first(nodes)):  # children before their parents
        parent = nodes[node_id].parent_id
        if parent is not None:
            below, above = amps[node_id], amps[parent]
            above[0] += below[0]
            above[1] += below[1]
            above[2] += below[2]
            if watts is not None:
                watts[parent] += watts[node_id]
