"""kill -9 at each point, for certain: the server's test hook kills it at a chosen message, the oracle judges.

The random kills of :mod:`benchmarks.resilience.kill` hit "after commit, before reply" only by luck. Here every
server start arms the hook (``CSMS_KILL_AT=<point>:<n>``, csms/runtime/fail_point.py): the server SIGKILLs
itself the n-th time a transaction message reaches the point (after receive, after commit before the reply,
after the reply), with n drawn at random so the fleet is caught in different states (replaying its offline
queues right after a restart, or later in the steady trickle). The points take turns, so each gets the same
number of kills. One iteration: a fresh database and fleet, ``kills_per_iteration`` armed starts each ending in
the hook's kill, then an unarmed start, the fleet finishes and drains, a clean stop, and the same oracle as the
random mode (:func:`~benchmarks.resilience.oracle.check_final`). With ``database="postgresql"`` the server runs
on PostgreSQL instead of a SQLite file: one throwaway cluster for the run (fsync on), a fresh database per
iteration.

At each kill the hook's marker names the message it caught; that message is judged against its point while the
server is dead: after receive its effect is not on disk (unless an earlier send of it was committed) and the
charger has no reply; after commit its effect is on disk and the charger has no reply; after reply its effect is
on disk. Everything else in flight at that instant, and every CALL answered before it, is classified and checked
as in the random mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.resilience.kill import KillPoint, all_connected, fleet, snapshot
from benchmarks.resilience.oracle import check_final, read_db
from benchmarks.resilience.postgres import PostgresCluster
from benchmarks.resilience.server import CsmsProcess
from benchmarks.resilience.station import DurableStation, Message

__all__ = ["POINTS", "KillPointsPlan", "bytecode_cached", "run_kill_points", "summarise_kill_points"]

POINTS = ("after_receive", "after_commit", "after_reply")


@dataclass(frozen=True)
class KillPointsPlan:
    kills_per_point: int = 100
    kills_per_iteration: int = 15  # a multiple of 3: the points take turns
    stations: int = 8  # half 1.6, half 2.0.1
    # The kill lands at the n-th transaction message at its point after a start, n uniform in this range: small n
    # while the fleet replays what it queued while the server was down, large n in the steady trickle after.
    nth: tuple[int, int] = (1, 800)
    down_s: tuple[float, float] = (0.0, 1.0)  # dead before the next start (stations queue offline meanwhile)
    tail_s: float = 1.0  # after the last (unarmed) start, before the stations finish their transactions
    interval: float = 0.1  # seconds between a station's events
    meters_per_tx: int = 3
    kill_timeout_s: float = 60.0  # an armed server still alive after this long is killed by hand: a miss
    drain_timeout: float = 90.0
    seed: int = 1
    database: str = "sqlite"  # or "postgresql"

    @property
    def iterations(self) -> int:
        return -(-3 * self.kills_per_point // self.kills_per_iteration)


QUICK_KILL_POINTS = KillPointsPlan(kills_per_point=1, kills_per_iteration=3, stations=6, nth=(1, 60), tail_s=0.5)


@dataclass
class Caught:
    """One armed start and the message its kill caught."""

    point: str
    nth: int
    restart_s: float = 0.0
    seconds_to_kill: float | None = None  # from the start's /healthz (None: it died before answering)
    killed: bool = False  # died by SIGKILL with the hook's marker (False: a miss)
    station: str = ""
    action: str = ""
    kind: str = ""  # start | meter | stop | idle
    first_send: bool = True
    on_disk: bool = False  # its effect was in the database while the server was dead
    reply_read: bool = False  # the charger read an answer to the caught send (after reply only)
    resent: bool = False  # sent again after the restart
    stations_replaying: int = 0  # stations with more than the CALL in flight still queued (replaying late)
    others_in_flight: int = 0  # CALLs of other stations in flight at the kill
    others_committed: int = 0  # ... whose effect was committed (caught after commit, before reply, by chance)
    fleet: KillPoint = field(default_factory=KillPoint)
    problems: list[str] = field(default_factory=list)


@dataclass
class PointsIteration:
    index: int
    kills: list[Caught] = field(default_factory=list)
    messages: int = 0
    offline_messages: int = 0
    resent: int = 0
    drained: bool = False
    final: dict[str, Any] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    violations: int = 0
    seconds: float = 0.0


def bytecode_cached() -> bool:
    """Whether the server's imports load compiled bytecode (with PYTHONDONTWRITEBYTECODE set and no compileall,
    every start compiles every module again: seconds per start on a loaded machine)."""
    spec = importlib.util.find_spec("sqlalchemy")
    if spec is None or spec.origin is None:
        return False
    return Path(importlib.util.cache_from_source(spec.origin)).exists()


def _start_armed(server: CsmsProcess, kill_at: str) -> float | None:
    """Start with the hook armed; seconds until /healthz answered, None when the hook killed it even before."""
    try:
        return server.start(kill_at=kill_at)
    except RuntimeError:
        if server.proc is not None and server.proc.returncode == -signal.SIGKILL:
            return None
        raise


def _find(stations: list[DurableStation], marker: dict[str, Any]) -> tuple[DurableStation, Message] | None:
    for station in stations:
        if station.identity != marker.get("station_id"):
            continue
        for message in reversed(station.messages):
            if marker.get("message_id") in message.message_ids:
                return station, message
    return None


def _judge_caught(caught: Caught, station: DurableStation, message: Message, server: CsmsProcess) -> int:
    """Check the caught message against its point while the server is dead; the send count it was caught at."""
    sends = message.sends
    caught.station, caught.action, caught.kind = station.identity, message.action, message.kind
    caught.first_send = sends == 1
    caught.on_disk = read_db(server.database).has_effect(station, message)
    if caught.point in ("after_commit", "after_reply") and not caught.on_disk:
        caught.problems.append(
            f"{station.identity}: {message.action} {message.kind} caught {caught.point}, not on disk"
        )
    if caught.point == "after_receive" and caught.first_send and caught.on_disk:
        caught.problems.append(f"{station.identity}: {message.action} {message.kind} caught after receive, on disk")
    return sends


async def _one_kill(
    caught: Caught, server: CsmsProcess, stations: list[DurableStation], plan: KillPointsPlan
) -> tuple[Message, int, list[tuple[Message, int]]] | None:
    """One armed start until the hook's kill; the caught message, its send count and the committed flights."""
    markers_before = len(server.fail_point_markers())
    started = await asyncio.to_thread(_start_armed, server, f"{caught.point}:{caught.nth}")
    began = time.monotonic()
    if started is not None:
        caught.restart_s = started
    code = await asyncio.to_thread(server.wait_dead, plan.kill_timeout_s)
    if code is None:
        server.kill()  # the fleet was too quiet to reach n: recorded as a miss, judged like any kill
    elif started is not None:
        caught.seconds_to_kill = time.monotonic() - began
    committed: list[tuple[Message, int]] = []
    caught.fleet = snapshot(server, stations, committed)
    caught.stations_replaying = sum(len(s.outbox) > 1 for s in stations)
    markers = server.fail_point_markers()[markers_before:]
    if code != -signal.SIGKILL or len(markers) != 1:
        caught.problems.append(f"armed {caught.point}:{caught.nth}: exit {code}, {len(markers)} markers")
        return None
    if markers[0]["fail_point"] != caught.point:
        caught.problems.append(f"armed {caught.point}, killed at {markers[0]['fail_point']}")
    found = _find(stations, markers[0])
    if found is None:
        caught.problems.append(f"no station sent the caught message {markers[0]}")
        return None
    caught.killed = True
    station, message = found
    sends = _judge_caught(caught, station, message, server)
    own = station.in_flight is message  # (after reply the charger may have read its answer already)
    caught.others_in_flight = caught.fleet.in_flight - own
    caught.others_committed = caught.fleet.committed - (own and caught.on_disk)
    return message, sends, committed


async def run_iteration(
    plan: KillPointsPlan,
    index: int,
    first_kill: int,
    workdir: Path,
    progress: Callable[[str], None],
    database_url: str | None = None,
) -> PointsIteration:
    began = time.monotonic()
    rng = random.Random(plan.seed * 100_003 + index)
    result = PointsIteration(index)
    server = CsmsProcess(workdir, database_url=database_url)
    stations = fleet(plan.stations, index, server.url, rng, plan.interval, plan.meters_per_tx)
    stop = asyncio.Event()
    producing = [asyncio.create_task(s.produce(stop)) for s in stations]
    deadline = time.monotonic() + plan.drain_timeout + plan.kills_per_iteration * (plan.kill_timeout_s + 30)
    draining = [asyncio.create_task(s.drain(p, deadline)) for s, p in zip(stations, producing, strict=True)]
    caught_sends: list[tuple[Caught, Message, int, list[tuple[Message, int]]]] = []
    try:
        for k in range(plan.kills_per_iteration):
            caught = Caught(POINTS[(first_kill + k) % len(POINTS)], rng.randint(*plan.nth))
            result.kills.append(caught)
            judged = await _one_kill(caught, server, stations, plan)
            if judged is not None:
                caught_sends.append((caught, *judged))
            await asyncio.sleep(rng.uniform(*plan.down_s))
        await asyncio.to_thread(server.start)
        await all_connected(stations, timeout=30.0)
        await asyncio.sleep(plan.tail_s)
        stop.set()
        result.drained = all(await asyncio.gather(*draining))
    finally:
        stop.set()
        for task in [*producing, *draining]:
            task.cancel()
        await asyncio.gather(*producing, *draining, return_exceptions=True)
        await asyncio.to_thread(server.stop)
    for caught, message, sends, committed in caught_sends:
        # The caught send's own answer arrived (after reply: the reply was on its way) or it was sent again.
        caught.reply_read = message.sends == sends and message.result is not None
        caught.resent = message.sends > sends
        if caught.point != "after_reply" and caught.reply_read:
            caught.problems.append(f"{caught.station}: {caught.action} caught {caught.point} but its reply arrived")
        caught.fleet.committed_resent = sum(m.sends > s for m, s in committed)
        caught.fleet.committed_reply_read = sum(m.sends == s and m.result is not None for m, s in committed)
    final = check_final(read_db(server.database), stations)
    result.final = asdict(final)
    result.server_errors = server.error_lines()
    messages = [m for s in stations for m in s.messages]
    result.messages = len(messages)
    result.offline_messages = sum(m.offline for m in messages)
    result.resent = sum(m.sends > 1 for m in messages)
    result.violations = (
        final.violations
        + sum(len(c.problems) + c.fleet.answered_missing for c in result.kills)
        + len(result.server_errors)
        + (0 if result.drained else 1)
    )
    result.seconds = time.monotonic() - began
    hit = Counter(c.point for c in result.kills if c.killed)
    progress(
        f"kill_points iteration {index + 1}/{plan.iterations}: kills {dict(hit)}, "
        f"caught {dict(Counter(c.kind for c in result.kills if c.killed))}, {result.messages} messages, "
        f"{final.transactions} transactions, violations {result.violations}, {result.seconds:.1f} s"
    )
    return result


async def run_kill_points(
    plan: KillPointsPlan,
    workdir: Path,
    progress: Callable[[str], None],
    new_database: Callable[[], str] | None = None,
) -> list[PointsIteration]:
    """The iterations; on PostgreSQL each gets a fresh database from ``new_database`` (its URL), or from a cluster
    started for the run when none is given."""
    if plan.database not in ("sqlite", "postgresql"):
        raise ValueError(f"unknown database {plan.database!r}: sqlite or postgresql")
    cluster = PostgresCluster() if plan.database == "postgresql" and new_database is None else None
    try:
        if cluster is not None:
            await asyncio.to_thread(cluster.start)
            new_database = cluster.create_database
        results = []
        for index in range(plan.iterations):
            iteration_dir = workdir / f"kill-points-{index:03d}"
            iteration_dir.mkdir(parents=True, exist_ok=True)
            url = None if plan.database == "sqlite" or new_database is None else await asyncio.to_thread(new_database)
            first_kill = index * plan.kills_per_iteration
            results.append(await run_iteration(plan, index, first_kill, iteration_dir, progress, url))
            with contextlib.suppress(OSError):
                (iteration_dir / "csms.db").unlink()
        return results
    finally:
        if cluster is not None:
            cluster.stop()


def _point_summary(kills: list[Caught]) -> dict[str, Any]:
    hit = [c for c in kills if c.killed]
    to_kill = sorted(c.seconds_to_kill for c in hit if c.seconds_to_kill is not None)
    return {
        "armed": len(kills),
        "killed": len(hit),
        "misses": len(kills) - len(hit),
        "caught": dict(Counter(c.kind for c in hit)),
        "caught_v16": sum(c.station.split("-")[1] == "V16" for c in hit),
        "first_send": sum(c.first_send for c in hit),
        "on_disk": sum(c.on_disk for c in hit),
        "reply_read": sum(c.reply_read for c in hit),
        "resent": sum(c.resent for c in hit),
        "during_replay": sum(c.stations_replaying > 0 for c in hit),
        "nth_median": sorted(c.nth for c in hit)[len(hit) // 2] if hit else None,
        "seconds_to_kill_median": to_kill[len(to_kill) // 2] if to_kill else None,
        "others_in_flight": sum(c.others_in_flight for c in hit),
        "others_committed": sum(c.others_committed for c in hit),
        "kills_with_others_in_flight": sum(c.others_in_flight > 0 for c in hit),
        "answered_checked": sum(c.fleet.answered for c in kills),
        "answered_lost": sum(c.fleet.answered_missing for c in kills),
        "problems": sum(len(c.problems) for c in kills),
    }


def summarise_kill_points(results: list[PointsIteration]) -> dict[str, Any]:
    kills = [c for r in results for c in r.kills]
    finals = [r.final for r in results]
    restarts = sorted(c.restart_s for c in kills if c.restart_s)

    def total(key: str) -> int:
        return sum(int(f[key]) for f in finals)

    return {
        "iterations": len(results),
        "kills": sum(c.killed for c in kills),
        "points": {point: _point_summary([c for c in kills if c.point == point]) for point in POINTS},
        "messages": sum(r.messages for r in results),
        "offline_messages": sum(r.offline_messages for r in results),
        "resent": sum(r.resent for r in results),
        **{
            key: total(key)
            for key in (
                "transactions",
                "readings",
                "lost_transactions",
                "duplicated_transactions",
                "wrong_transaction_ids",
                "stops_missing",
                "lost_readings",
                "duplicated_readings",
                "idle_readings",
                "lost_idle_readings",
                "duplicated_idle_readings",
                "phantom_transactions",
                "unanswered_messages",
                "undelivered_transactions",
                "call_errors",
            )
        },
        "server_errors": sum(len(r.server_errors) for r in results),
        "undrained_iterations": sum(not r.drained for r in results),
        "violations": sum(r.violations for r in results),
        "restart_s_median": restarts[len(restarts) // 2] if restarts else None,
        "bytecode_cached": bytecode_cached(),
        "seconds": sum(r.seconds for r in results),
        "details": [p for c in kills for p in c.problems][:10]
        + [d for r in results for d in r.final.get("details", [])][:10]
        + [e for r in results for e in r.server_errors][:10],
    }
