"""Bulk OCPP fuzzing: thousands of mutated frames per action, from worker processes, with the same checks.

Profiling the hypothesis-driven run (benchmarks/fuzzing.py) showed where its ~14 ms per frame went: 3 to 13 ms to
draw one example (hypothesis's engine, per test case), 0.5 to 2 ms for the round trip of the frame and its
Heartbeat sentinel through the server. So a bulk run draws a pool of schema-valid payloads per action with
hypothesis (``payload_pool``) and mutates them with a seeded ``random.Random`` (``seeded_frames``), through the
very mutation functions the hypothesis strategies use (``mutate``, ``raw_mutate``). Worker processes each keep
one station connection per version and fuzz whole actions; every frame is still followed by its sentinel and
checked by ``FuzzClient.check_batch``: a batch of frames, each followed by its sentinel, is sent before their
answers are read (the server answers in order), which saves a round trip per frame. A failed check ends that
action (as hypothesis would) and names the seed and the batch's frame indexes, so ``seeded_frames`` can rebuild it.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import random
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings

from benchmarks.fuzzing import (
    MUTATIONS,
    SUBPROTOCOLS,
    FuzzClient,
    FuzzFrame,
    RandomChooser,
    Tally,
    actions,
    call_frame,
    dumps,
    from_schema,
    mutate,
    raw_mutate,
    request_schema,
)

__all__ = ["BulkPlan", "BulkResult", "merge", "payload_pool", "run_bulk", "seeded_frames"]

# A bulk run sends valid frames explicitly, so the no-op "nothing" kind would only relabel a valid frame.
_CALL_MUTATIONS = tuple(kind for kind in MUTATIONS if kind != "nothing")


@dataclass(frozen=True)
class BulkPlan:
    mutations: int  # mutated frames per action (two thirds mutated payloads, one third mutated frames)
    valid: int  # unmutated CALLs per action on top
    pool: int  # hypothesis-drawn valid payloads per action that the mutations start from
    workers: int  # worker processes, each with its own station connections
    seed: int = 0
    batch: int = 8  # frames (each with its sentinel) sent before their answers are read


@dataclass
class BulkResult:
    tally: Tally = field(default_factory=Tally)
    failures: list[str] = field(default_factory=list)
    pool_sizes: dict[str, int] = field(default_factory=dict)  # "1.6 Action" -> distinct valid payloads


def payload_pool(subprotocol: str, action: str, size: int, draw_seed: int) -> list[Any]:
    """Up to ``size`` distinct schema-valid payloads of ``action``, drawn by hypothesis from ``draw_seed``."""
    drawn: dict[str, Any] = {}

    @seed(draw_seed)
    @settings(
        max_examples=size,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(payload=from_schema(request_schema(subprotocol, action)))
    def collect(payload: Any) -> None:
        drawn.setdefault(dumps(payload), payload)

    collect()
    return list(drawn.values())


def seeded_frames(action: str, pool: list[Any], mutations: int, valid: int, rng: random.Random) -> Iterator[FuzzFrame]:
    """``valid`` unmutated CALLs and ``mutations`` mutated ones (payload mutations and frame mutations, 2:1) in a
    seeded order, each on a payload from ``pool`` and with its own message id."""
    chooser = RandomChooser(rng)
    payload_mutations = round(mutations * 2 / 3)
    roles = ["valid"] * valid + ["payload"] * payload_mutations + ["frame"] * (mutations - payload_mutations)
    rng.shuffle(roles)
    for role in roles:
        payload = rng.choice(pool)
        if role == "payload":
            kind, payload = mutate(payload, chooser, _CALL_MUTATIONS)
            yield call_frame(action, payload, kind, chooser.message_id())
        elif role == "frame":
            yield raw_mutate(call_frame(action, payload, "valid", chooser.message_id()).text, chooser)
        else:
            yield call_frame(action, payload, "valid", chooser.message_id())


def action_seed(base: int, subprotocol: str, action: str) -> int:
    """A seed per action that every process derives alike (``hash`` of a str differs between processes)."""
    return zlib.crc32(f"{base}/{subprotocol}/{action}".encode())


@dataclass(frozen=True)
class _Task:
    ws_base: str  # ws://host:port/ocpp/
    subprotocol: str
    action: str
    plan: BulkPlan


# Each worker process keeps its station connections between actions (one per version).
_clients: dict[str, FuzzClient] = {}


def _fuzz_action(task: _Task) -> BulkResult:
    result = BulkResult()
    action_rng_seed = action_seed(task.plan.seed, task.subprotocol, task.action)
    pool = payload_pool(task.subprotocol, task.action, task.plan.pool, action_rng_seed)
    result.pool_sizes[f"{task.subprotocol.removeprefix('ocpp')} {task.action}"] = len(pool)
    rng = random.Random(action_rng_seed)
    frames = seeded_frames(task.action, pool, task.plan.mutations, task.plan.valid, rng)
    checked = 0  # on a failure: the index of the failing batch's first frame in ``seeded_frames``
    batch: list[FuzzFrame] = []
    try:
        client = _clients.get(task.subprotocol)
        if client is None:
            identity = f"FUZZ-{task.subprotocol}-{os.getpid()}"
            client = _clients[task.subprotocol] = FuzzClient(task.ws_base + identity, task.subprotocol)
        client.tally = result.tally
        for frame in frames:
            batch.append(frame)
            if len(batch) == task.plan.batch:
                client.check_batch(task.action, batch)
                checked += len(batch)
                batch = []
        if batch:
            client.check_batch(task.action, batch)
    except Exception as exc:  # a failed check ends the action; the next one starts on a fresh connection
        result.failures.append(
            f"{task.subprotocol} {task.action}: frames #{checked} to #{checked + max(0, len(batch) - 1)} of seed "
            f"{action_rng_seed}: "
            f"{type(exc).__name__}: {str(exc)[:500]}"
        )
        stale = _clients.pop(task.subprotocol, None)
        if stale is not None:
            stale.close()
    return result


def _close_clients() -> None:
    for client in _clients.values():
        client.close()
    _clients.clear()


def merge(into: BulkResult, part: BulkResult) -> None:
    into.tally.examples += part.tally.examples
    into.tally.results += part.tally.results
    into.tally.errors.update(part.tally.errors)
    into.tally.silent += part.tally.silent
    into.tally.actions |= part.tally.actions
    into.tally.mutations.update(part.tally.mutations)
    into.tally.mutated.update(part.tally.mutated)
    into.failures += part.failures
    into.pool_sizes.update(part.pool_sizes)


def run_bulk(ws_base: str, plan: BulkPlan, progress: Callable[[str], None] | None = None) -> BulkResult:
    """Fuzz every action of both versions per ``plan`` against the server at ``ws_base`` (``ws://…/ocpp/``);
    ``progress`` gets a line per action done."""
    tasks = [
        _Task(ws_base, subprotocol, action, plan) for subprotocol in SUBPROTOCOLS for action in actions(subprotocol)
    ]
    result = BulkResult()
    # spawn: the caller usually runs the server in a thread of its own process, which fork must not copy.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(plan.workers, mp_context=context, initializer=_start_worker) as pool:
        for done, part in enumerate(pool.map(_fuzz_action, tasks), start=1):
            merge(result, part)
            if progress is not None:
                progress(f"{done}/{len(tasks)} actions, {result.tally.examples} frames, {len(result.failures)} failed")
    return result


def _start_worker() -> None:
    # A worker's stations say goodbye (close 1000) when the pool ends the process.
    multiprocessing.util.Finalize(None, _close_clients, exitpriority=10)
