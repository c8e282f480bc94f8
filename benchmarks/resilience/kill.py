"""kill -9 of the server in a busy fleet, then restart, replay, and judge the database against the chargers.

One iteration: a fresh database, ``python -m csms serve``, a fleet of durable stations (half 1.6, half 2.0.1)
running transactions back to back. After a random busy time the server gets SIGKILL. At that instant, before
anything else runs, every station's unanswered CALL is noted and the database file is read: each in-flight CALL
is classified by whether its effect was already committed (the kill landed during receive / before commit, or
after commit but before the charger read the reply), and every CALL that was answered before the kill must have
its effect on disk. The server stays dead for a random while (stations keep charging and queue their messages
with their own timestamps), is restarted on the same database, and the stations reconnect and replay. After the
last kill the fleet runs a little longer, finishes its transactions and drains its queues; then the server is
stopped cleanly and :func:`~benchmarks.resilience.oracle.check_final` judges the result.

Random kill times over many iterations cover the three points (during receive, after commit before reply,
after reply); the classification shows how often each was hit. No test hook in the server is needed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.resilience.oracle import check_final, read_db
from benchmarks.resilience.server import CsmsProcess
from benchmarks.resilience.station import DurableStation, Message, Version

__all__ = [
    "IterationResult",
    "KillPlan",
    "KillPoint",
    "all_connected",
    "fleet",
    "run_kill",
    "snapshot",
    "summarise_kill",
]


@dataclass(frozen=True)
class KillPlan:
    iterations: int = 12
    stations: int = 40  # half 1.6, half 2.0.1
    kills_per_iteration: int = 4
    busy_s: tuple[float, float] = (0.0, 2.0)  # fleet reconnected -> kill
    down_s: tuple[float, float] = (0.2, 2.0)  # how long the server stays dead
    tail_s: float = 1.0  # after the last restart, before the stations finish their transactions
    interval: float = 0.05  # seconds between a station's events
    meters_per_tx: int = 5
    max_transactions: int = 25  # per station: bounds the work whatever the restarts cost
    # Share of kills that wait (after the random delay) until some station has a CALL in flight, so the
    # "during receive" and "after commit, before reply" points are hit often, not only by luck.
    in_flight_share: float = 0.5
    drain_timeout: float = 90.0
    seed: int = 1


QUICK_KILL = KillPlan(
    iterations=2, stations=10, kills_per_iteration=2, busy_s=(0.0, 1.0), down_s=(0.2, 1.0), max_transactions=10
)


@dataclass
class KillPoint:
    """The fleet at one SIGKILL."""

    in_flight: int = 0  # CALLs sent, no reply read
    uncommitted: int = 0  # ... whose effect was not in the database (killed during receive / before commit)
    committed: int = 0  # ... whose effect was committed (killed after commit, before the reply was read)
    answered: int = 0  # CALLs answered before the kill (after reply)
    answered_missing: int = 0  # ... whose effect was NOT in the database: a durability violation
    # Of the committed ones, known once the fleet has drained: resent (and answered again, idempotently) or
    # answered by the reply that was already on its way when the server died.
    committed_resent: int = 0
    committed_reply_read: int = 0
    details: list[str] = field(default_factory=list)


@dataclass
class IterationResult:
    index: int
    kills: list[KillPoint] = field(default_factory=list)
    restart_s: list[float] = field(default_factory=list)
    messages: int = 0
    offline_messages: int = 0  # queued while the station was disconnected, replayed late
    resent: int = 0  # messages sent more than once (their first send got no reply)
    max_late_s: float = 0.0  # longest event-to-answer delay
    reconnects: int = 0
    connect_failures: int = 0
    drained: bool = False
    final: dict[str, Any] = field(default_factory=dict)
    violations: int = 0
    server_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def fleet(
    size: int, index: int, url: str, rng: random.Random, interval: float, meters_per_tx: int
) -> list[DurableStation]:
    """``size`` durable stations, half 1.6, half 2.0.1, named after iteration ``index``."""
    stations = []
    for n in range(size):
        version: Version = "1.6" if n % 2 == 0 else "2.0.1"
        identity = f"K{index:03d}-{'V16' if version == '1.6' else 'V201'}-{n:03d}"
        station = DurableStation(
            identity,
            version,
            url,
            rng=random.Random(rng.random()),
            interval=interval,
            meters_per_tx=meters_per_tx,
        )
        stations.append(station)
    return stations


async def all_connected(stations: list[DurableStation], timeout: float) -> None:
    began = time.monotonic()
    while not all(s.connected for s in stations) and time.monotonic() - began < timeout:
        await asyncio.sleep(0.02)


async def _some_call_in_flight(stations: list[DurableStation], timeout: float) -> None:
    began = time.monotonic()
    while not any(s.in_flight for s in stations) and time.monotonic() - began < timeout:
        await asyncio.sleep(0)  # yield to the stations; checked again right after every event they handle


def _kill_point(
    server: CsmsProcess, stations: list[DurableStation], committed_flights: list[tuple[Message, int]]
) -> KillPoint:
    """SIGKILL, then (before any station can react) what was in flight and what the disk holds."""
    server.kill()
    return snapshot(server, stations, committed_flights)


def snapshot(
    server: CsmsProcess, stations: list[DurableStation], committed_flights: list[tuple[Message, int]]
) -> KillPoint:
    """Right after the server died: each station's CALL in flight, committed or not (the committed ones are added
    to ``committed_flights`` with their send count), and whether every answered CALL is on disk."""
    point = KillPoint()
    flying = [(s, s.in_flight) for s in stations if s.in_flight is not None]
    view = read_db(server.database)
    for station, message in flying:
        assert message is not None
        point.in_flight += 1
        if view.has_effect(station, message):
            point.committed += 1
            committed_flights.append((message, message.sends))
        else:
            point.uncommitted += 1
    for station in stations:
        for message in station.messages:
            if message.result is None:
                continue
            point.answered += 1
            if not view.has_effect(station, message):
                point.answered_missing += 1
                if len(point.details) < 10:
                    point.details.append(f"{station.identity}: answered {message.action} {message.kind} lost")
    return point


async def run_iteration(
    plan: KillPlan, index: int, workdir: Path, progress: Callable[[str], None], database_url: str | None = None
) -> IterationResult:
    began = time.monotonic()
    rng = random.Random(plan.seed * 100_003 + index)
    result = IterationResult(index)
    server = CsmsProcess(workdir, database_url=database_url)
    await asyncio.to_thread(server.start)
    stations = fleet(plan.stations, index, server.url, rng, plan.interval, plan.meters_per_tx)
    stop = asyncio.Event()
    producing = [asyncio.create_task(s.produce(stop, plan.max_transactions)) for s in stations]
    deadline = time.monotonic() + plan.drain_timeout + plan.kills_per_iteration * 10
    draining = [asyncio.create_task(s.drain(p, deadline)) for s, p in zip(stations, producing, strict=True)]
    try:
        flights: list[list[tuple[Message, int]]] = []
        for _ in range(plan.kills_per_iteration):
            # The kill lands a random while after the whole fleet is back: while it replays its queues (every
            # station has a CALL in flight) or later, in the steady trickle.
            await all_connected(stations, timeout=30.0)
            await asyncio.sleep(rng.uniform(*plan.busy_s))
            if rng.random() < plan.in_flight_share:
                await _some_call_in_flight(stations, timeout=2.0)
            flights.append([])
            result.kills.append(_kill_point(server, stations, flights[-1]))
            await asyncio.sleep(rng.uniform(*plan.down_s))
            result.restart_s.append(await asyncio.to_thread(server.start))
        await asyncio.sleep(plan.tail_s)
        stop.set()
        drained = await asyncio.gather(*draining)
        result.drained = all(drained)
        for point, committed in zip(result.kills, flights, strict=True):
            point.committed_resent = sum(m.sends > sends for m, sends in committed)
            point.committed_reply_read = sum(m.sends == sends and m.result is not None for m, sends in committed)
    finally:
        stop.set()
        for task in [*producing, *draining]:
            task.cancel()
        await asyncio.gather(*producing, *draining, return_exceptions=True)
        await asyncio.to_thread(server.stop)
    final = check_final(read_db(server.database), stations)
    result.final = asdict(final)
    result.server_errors = server.error_lines()
    messages = [m for s in stations for m in s.messages]
    result.messages = len(messages)
    result.offline_messages = sum(m.offline for m in messages)
    result.resent = sum(m.sends > 1 for m in messages)
    result.max_late_s = max((m.answered_late_s or 0.0 for m in messages), default=0.0)
    result.reconnects = sum(s.connects for s in stations)
    result.connect_failures = sum(s.connect_failures for s in stations)
    result.violations = (
        final.violations
        + sum(k.answered_missing for k in result.kills)
        + len(result.server_errors)
        + (0 if result.drained else 1)
    )
    result.seconds = time.monotonic() - began
    progress(
        f"kill iteration {index + 1}/{plan.iterations}: {len(result.kills)} kills, "
        f"in flight {sum(k.in_flight for k in result.kills)} "
        f"(committed {sum(k.committed for k in result.kills)}), {result.messages} messages, "
        f"{result.offline_messages} offline, {final.transactions} transactions, violations {result.violations}, "
        f"duplicated readings {final.duplicated_readings}, {result.seconds:.1f} s"
    )
    return result


async def run_kill(
    plan: KillPlan,
    workdir: Path,
    progress: Callable[[str], None],
    new_database: Callable[[], str] | None = None,
) -> list[IterationResult]:
    """The iterations, each on a fresh SQLite file, or on a fresh database from ``new_database`` (its URL)."""
    results = []
    for index in range(plan.iterations):
        iteration_dir = workdir / f"kill-{index:03d}"
        iteration_dir.mkdir(parents=True, exist_ok=True)
        url = None if new_database is None else await asyncio.to_thread(new_database)
        results.append(await run_iteration(plan, index, iteration_dir, progress, url))
    return results


def summarise_kill(results: list[IterationResult]) -> dict[str, Any]:
    kills = [k for r in results for k in r.kills]
    finals = [r.final for r in results]
    restarts = sorted(s for r in results for s in r.restart_s)
    return {
        "iterations": len(results),
        "kills": len(kills),
        "in_flight": sum(k.in_flight for k in kills),
        "killed_before_commit": sum(k.uncommitted for k in kills),
        "killed_after_commit_before_reply": sum(k.committed for k in kills),
        "committed_then_resent": sum(k.committed_resent for k in kills),
        "committed_reply_read_after_kill": sum(k.committed_reply_read for k in kills),
        "answered_before_kill_checked": sum(k.answered for k in kills),
        "answered_lost": sum(k.answered_missing for k in kills),
        "kills_with_commit_before_reply": sum(1 for k in kills if k.committed),
        "messages": sum(r.messages for r in results),
        "offline_messages": sum(r.offline_messages for r in results),
        "resent": sum(r.resent for r in results),
        "max_late_s": max((r.max_late_s for r in results), default=0.0),
        "transactions": sum(f["transactions"] for f in finals),
        "readings": sum(f["readings"] for f in finals),
        "lost_transactions": sum(f["lost_transactions"] for f in finals),
        "duplicated_transactions": sum(f["duplicated_transactions"] for f in finals),
        "wrong_transaction_ids": sum(f["wrong_transaction_ids"] for f in finals),
        "stops_missing": sum(f["stops_missing"] for f in finals),
        "lost_readings": sum(f["lost_readings"] for f in finals),
        "duplicated_readings": sum(f["duplicated_readings"] for f in finals),
        "idle_readings": sum(f.get("idle_readings", 0) for f in finals),
        "lost_idle_readings": sum(f.get("lost_idle_readings", 0) for f in finals),
        "duplicated_idle_readings": sum(f.get("duplicated_idle_readings", 0) for f in finals),
        "phantom_transactions": sum(f["phantom_transactions"] for f in finals),
        "unanswered_messages": sum(f["unanswered_messages"] for f in finals),
        "undelivered_transactions": sum(f["undelivered_transactions"] for f in finals),
        "call_errors": sum(f["call_errors"] for f in finals),
        "server_errors": sum(len(r.server_errors) for r in results),
        "undrained_iterations": sum(not r.drained for r in results),
        "violations": sum(r.violations for r in results),
        "restart_s_median": restarts[len(restarts) // 2] if restarts else None,
        "restart_s_max": restarts[-1] if restarts else None,
        "seconds": sum(r.seconds for r in results),
        "details": [d for r in results for d in r.final.get("details", [])][:20]
        + [d for k in kills for d in k.details][:10]
        + [e for r in results for e in r.server_errors][:10],
    }
