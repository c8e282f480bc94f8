"""Compiling the site tree into constraints: the real-time path's pruning, and the constraints kept between
re-plans of the same tree (they must always be what a compile from scratch gives)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.grid import CapacityHold, GridError, GridNode, LimitWindow
from csms.scheduler.model import Snapshot
from csms.scheduler.network import Network, compile_network
from tests.unit.scheduler_cases import session_maker

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
END = NOW + timedelta(hours=24)

session = session_maker(NOW, energy_wh=20_000)

# A 60 A site over two 32 A stations, one of them with a single-phase car on L1 and one on L2: each of that
# station's phases is filled exactly by one car at its maximum.
NODES = (
    GridNode("site", max_current_a=60),
    GridNode("a", "site", max_current_a=32),
    GridNode("b", "site", max_current_a=32),
)
SESSIONS = (
    session("a1", node="a", phases=(1,)),
    session("a2", node="a", phases=(2,)),
    session("b1", node="b", max_a=16),
    session("b2", node="b", max_a=20),
)


def _shape(network: Network) -> list[tuple[str, int, tuple[int, ...], tuple[float, ...], tuple[float, ...]]]:
    return [(c.node_id, c.phase, c.members, c.coefficients, c.capacities) for c in network.constraints]


_SPARE = itertools.count()


def _fresh(snapshot: Snapshot, **options: bool) -> Network:
    """The network compiled from scratch. A tree with one more node (no limit, no sessions: no constraint of its
    own) has a structure never seen before, so nothing compiled for an earlier tree is reused."""
    spare = GridNode(f"spare-{next(_SPARE)}", snapshot.nodes[0].id)
    return compile_network(replace(snapshot, nodes=(*snapshot.nodes, spare)), NOW, END, **options)


def test_constraints_filled_exactly_at_the_maxima_are_left_out_only_when_asked() -> None:
    snapshot = Snapshot(NODES, SESSIONS)
    default = {(c.node_id, c.phase) for c in _fresh(snapshot).constraints}
    at_maxima = {(c.node_id, c.phase) for c in _fresh(snapshot, prune_at_maxima=True).constraints}
    # Station b: 16 + 20 A > 32 A on every phase; station a: 32 A = one car's maximum on L1 and on L2; the site:
    # 32 + 36 A > 60 A on L1 and L2, 36 A on L3.
    assert default == {("site", 1), ("site", 2), ("b", 1), ("b", 2), ("b", 3), ("a", 1), ("a", 2)}
    assert at_maxima == default - {("a", 1), ("a", 2)}


def test_a_re_plan_with_only_new_energy_reuses_the_constraints() -> None:
    first = compile_network(Snapshot(NODES, SESSIONS), NOW, END)
    later = Snapshot(NODES, tuple(replace(s, energy_wh=1_000.0) for s in SESSIONS))
    again = compile_network(later, NOW + timedelta(minutes=5), END + timedelta(minutes=5))
    assert again.constraints is first.constraints
    assert again.sessions == later.sessions and again.sessions[0] is later.sessions[0]
    assert again.boundaries == (NOW + timedelta(minutes=5), END + timedelta(minutes=5))
    assert _shape(again) == _shape(_fresh(later))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: replace(s, sessions=(replace(SESSIONS[0], max_current_a=20), *SESSIONS[1:])), id="max"),
        pytest.param(lambda s: replace(s, sessions=(*SESSIONS[:3], replace(SESSIONS[3], fixed_a=20))), id="fixed"),
        pytest.param(lambda s: replace(s, sessions=SESSIONS[1:]), id="one gone"),
        pytest.param(lambda s: replace(s, sessions=SESSIONS[::-1]), id="order"),
        pytest.param(lambda s: replace(s, sessions=(*SESSIONS[:2], replace(SESSIONS[2], node_id="a"))), id="moved"),
        pytest.param(
            lambda s: replace(s, holds=(CapacityHold("h", "b", NOW + timedelta(hours=1), END, 10),)), id="hold"
        ),
    ],
)
def test_anything_else_that_changes_is_compiled_again(change: object) -> None:
    snapshot = Snapshot(NODES, SESSIONS)
    first = compile_network(snapshot, NOW, END)
    changed = change(snapshot)  # type: ignore[operator]
    again = compile_network(changed, NOW, END)
    assert _shape(again) == _shape(_fresh(changed))
    assert _shape(again) != _shape(first)


@pytest.mark.parametrize(
    "nodes",
    [
        pytest.param((replace(NODES[0], max_current_a=50), *NODES[1:]), id="limit lowered"),
        pytest.param((replace(NODES[0], unmanaged_a=(10.0, 0.0, 5.0)), *NODES[1:]), id="unmanaged load"),
        pytest.param((NODES[0], NODES[1], replace(NODES[2], max_current_a=None)), id="limit removed"),
        pytest.param((replace(NODES[0], max_power_w=20_000), *NODES[1:]), id="power limit added"),
        pytest.param(
            (*NODES[:2], replace(NODES[2], parent_id="c"), GridNode("c", "site", max_current_a=30)), id="node added"
        ),
        pytest.param((NODES[0], replace(NODES[1], parent_id="b"), NODES[2]), id="node moved"),
    ],
)
def test_a_changed_tree_compiles_as_from_scratch(nodes: tuple[GridNode, ...]) -> None:
    """A new tree whose structure is unchanged (an edited limit, a reported load) reuses what was compiled for the
    old one's structure and reads the limits again; any other change compiles everything."""
    before = compile_network(Snapshot(NODES, SESSIONS), NOW, END)
    changed = Snapshot(nodes, SESSIONS)
    after = compile_network(changed, NOW, END)
    assert _shape(after) == _shape(_fresh(changed))
    assert _shape(after) != _shape(before)


def test_a_deep_chain_of_nodes_compiles() -> None:
    """Chains are walked without recursion: a tree deeper than Python's recursion limit is fine."""
    chain = (
        GridNode("n0", max_current_a=1_000),
        *(GridNode(f"n{i}", f"n{i - 1}") for i in range(1, 2999)),
        GridNode("n2999", "n2998", max_current_a=40),
    )
    network = compile_network(Snapshot(chain, (session("deep", node="n2999", max_a=200),)), NOW, END)
    assert len(network.ancestors["n2999"]) == 3000
    assert [(c.node_id, c.phase) for c in network.constraints] == [("n2999", 1), ("n2999", 2), ("n2999", 3)]


def test_a_limit_window_is_followed_as_time_passes() -> None:
    """With a window the capacities depend on the time: later re-plans inside and after it see its limit come and
    go, even when nothing else (nor the number of segments) changes."""
    window = LimitWindow(NOW + timedelta(hours=1), NOW + timedelta(hours=30), max_current_a=40)
    snapshot = Snapshot((replace(NODES[0], schedule=(window,)), *NODES[1:]), SESSIONS)
    site = []
    for hours in (0, 2, 31):
        start = NOW + timedelta(hours=hours)
        network = compile_network(snapshot, start, start + timedelta(hours=24))
        site.append([c.capacities for c in network.constraints if c.node_id == "site"])
    assert site == [[(60, 40)] * 2, [(40,)] * 2, [(60,)] * 2]


def test_a_negative_minimum_is_refused_on_a_re_plan_too() -> None:
    compile_network(Snapshot(NODES, SESSIONS), NOW, END)
    wrong = (replace(SESSIONS[0], min_current_a=-1), *SESSIONS[1:])
    with pytest.raises(GridError, match="a1"):
        compile_network(Snapshot(NODES, wrong), NOW, END)


def test_the_first_bad_session_is_the_one_named() -> None:
    """Sessions are checked all at once when all is well, one by one otherwise: the error names the first."""
    compile_network(Snapshot(NODES, SESSIONS), NOW, END)  # every shape known from here on
    wrong = (
        SESSIONS[0],
        replace(SESSIONS[1], max_current_a=-1),
        replace(SESSIONS[2], node_id="nowhere"),
        replace(SESSIONS[3], min_current_a=-1),
    )
    with pytest.raises(GridError, match="a2"):
        compile_network(Snapshot(NODES, wrong), NOW, END)
    with pytest.raises(GridError, match="unknown node 'nowhere'"):
        compile_network(Snapshot(NODES, wrong[2:]), NOW, END)
    with pytest.raises(GridError, match="b2"):
        compile_network(Snapshot(NODES, (SESSIONS[0], wrong[3])), NOW, END)
