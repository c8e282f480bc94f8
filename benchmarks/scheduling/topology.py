"""Node loads of the 3-level site tree, vectorised over sessions: measured (simulator) or planned (plan check).

Each level (site, feeders, stations) maps every session to one node; a node's load is four numbers: the current
on grid phases L1..L3 (A) and the total power (W), compared with its limits (inf where a node has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.scheduling.workload import SITE_ID, Workload
from csms.domain.grid import GridNode

__all__ = ["LOAD_COLUMNS", "Level", "Topology"]

LOAD_COLUMNS = ("L1", "L2", "L3", "W")


@dataclass(slots=True)
class Level:
    name: str
    node_ids: list[str]
    index: np.ndarray  # per session: its node at this level
    rows: slice  # this level's rows in Topology.limits and in the arrays ``loads`` returns


class Topology:
    """Loads come back as one (all nodes, 4) array, levels stacked (``Level.rows``): one bincount per column."""

    def __init__(self, workload: Workload, nodes: Sequence[GridNode]) -> None:
        stations = workload.site.stations
        station_of = np.array([workload.site.evses[s.evse].station for s in workload.sessions], dtype=np.intp)
        feeder_ids = sorted({st.feeder_id for st in stations})
        feeder_index = {f: k for k, f in enumerate(feeder_ids)}
        feeder_of_station = np.array([feeder_index[st.feeder_id] for st in stations], dtype=np.intp)
        n = len(workload.sessions)
        levels = [
            ("site", [SITE_ID], np.zeros(n, dtype=np.intp)),
            ("feeder", feeder_ids, feeder_of_station[station_of] if n else np.zeros(0, dtype=np.intp)),
            ("station", [st.id for st in stations], station_of),
        ]
        self.levels: list[Level] = []
        offset = 0
        for name, ids, index in levels:
            self.levels.append(Level(name, ids, index, slice(offset, offset + len(ids))))
            offset += len(ids)
        self.size = offset
        self._index = np.concatenate([level.index + level.rows.start for level in self.levels])
        self._session_of = np.tile(np.arange(n), len(self.levels))
        # Small sites: one dense (nodes x sessions) product per step beats bincounts by far.
        self._membership: np.ndarray | None = None
        if offset * n <= 4_000_000:
            self._membership = np.zeros((offset, n))
            self._membership[self._index, self._session_of] = 1.0
        self.limits = np.zeros((offset, 4))  # A on L1..L3, then W; inf where the node has no such limit
        self.set_limits(nodes)

    def set_limits(self, nodes: Sequence[GridNode]) -> None:
        by_id = {node.id: node for node in nodes}
        for level in self.levels:
            for k, node_id in enumerate(level.node_ids):
                node = by_id[node_id]
                current = np.inf if node.max_current_a is None else node.max_current_a
                power = np.inf if node.max_power_w is None else node.max_power_w
                row = level.rows.start + k
                self.limits[row] = [current if p in node.phases else np.inf for p in (1, 2, 3)] + [power]

    def loads(self, current_a: np.ndarray, phase_matrix: np.ndarray, watts_per_amp: np.ndarray) -> np.ndarray:
        """A (nodes, 4) array of every node's load from per-session currents (A per phase)."""
        per_session = np.empty((current_a.size, 4))
        np.multiply(current_a[:, None], phase_matrix, out=per_session[:, :3])
        np.multiply(current_a, watts_per_amp, out=per_session[:, 3])
        if self._membership is not None:
            return np.asarray(self._membership @ per_session)
        spread = per_session[self._session_of]
        return np.stack([np.bincount(self._index, weights=spread[:, c], minlength=self.size) for c in range(4)], axis=1)

    def excess(self, loads: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
        """A boolean (nodes, 4) array: which node limits ``loads`` break."""
        # Watts are ~230x amps, so the same relative slack is scaled for the power column.
        over: np.ndarray = loads > self.limits + np.array([tolerance, tolerance, tolerance, tolerance * 230.0])
        return over
