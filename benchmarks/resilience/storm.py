"""Reconnect storm: a booted fleet loses the server (SIGKILL), the server restarts, everyone comes back at once.

Half the fleet is 1.6 with no back-off rule (1.6 has none): each station retries at once and then every
``fixed_retry_s``, so they arrive in lockstep. The other half is 2.0.1 with the spec's reconnect back-off (§5.3,
RetryBackOffWaitMinimum / RetryBackOffRandomRange / RetryBackOffRepeatTimes): the first wait is the minimum plus
a random part, each further wait doubles, capped. A station is *back* when its BootNotification was accepted
and a Heartbeat answered on the new connection. Times count from the moment the restarted listener accepts TCP.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.resilience.light import FAILURES, CallFailed, LightStation, Version
from benchmarks.resilience.server import CsmsProcess

__all__ = ["StormPlan", "run_storm"]


@dataclass(frozen=True)
class StormPlan:
    stations: int = 2000
    fixed_retry_s: float = 1.0  # 1.6 half: lockstep
    backoff_min_s: float = 1.0  # 2.0.1 half: RetryBackOffWaitMinimum
    backoff_random_s: float = 2.0  # RetryBackOffRandomRange
    backoff_cap_s: float = 16.0
    connect_concurrency: int = 100  # initial connect only (before the storm)
    timeout_s: float = 180.0  # bound for everyone to come back
    seed: int = 1


QUICK_STORM = StormPlan(stations=100, timeout_s=60.0)


@dataclass
class Returner:
    station: LightStation
    rng: random.Random
    dropped_at: float = 0.0
    back_at: float | None = None
    serve_s: float | None = None  # the successful attempt: connect + boot + heartbeat
    failed_attempts: int = 0
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


async def _wait_listening(port: int, timeout: float) -> float:
    """Poll the OCPP port until it accepts TCP; the monotonic time it first did."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        return time.monotonic()
    raise RuntimeError("the restarted server never listened")


async def _come_back(plan: StormPlan, returner: Returner, deadline: float) -> None:
    """Retry until booted and a heartbeat answered, by the station's version's rule."""
    station = returner.station
    wait = 0.0 if station.version == "1.6" else plan.backoff_min_s + returner.rng.uniform(0, plan.backoff_random_s)
    while time.monotonic() < deadline:
        await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        returner.attempts += 1
        attempt_at = time.monotonic()
        try:
            await station.connect_and_boot(ping_interval=None, compression=None)
            await station.heartbeat()
        except (*FAILURES, CallFailed) as exc:
            returner.failed_attempts += 1
            if len(returner.errors) < 3:
                returner.errors.append(type(exc).__name__)
            await station.close()
            if station.version == "1.6":
                wait = plan.fixed_retry_s
            else:
                wait = min(plan.backoff_cap_s, wait * 2) + returner.rng.uniform(0, plan.backoff_random_s)
            continue
        returner.back_at = time.monotonic()
        returner.serve_s = returner.back_at - attempt_at
        return


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _group(returners: list[Returner], listen_at: float) -> dict[str, Any]:
    times = [r.back_at - listen_at for r in returners if r.back_at is not None]
    serve = [r.serve_s for r in returners if r.serve_s is not None]
    return {
        "serve_p50_s": _percentile(serve, 50),
        "serve_p99_s": _percentile(serve, 99),
        "stations": len(returners),
        "back": len(times),
        "p50_s": _percentile(times, 50),
        "p99_s": _percentile(times, 99),
        "max_s": max(times) if times else None,
        "failed_attempts": sum(r.failed_attempts for r in returners),
        "attempts": sum(r.attempts for r in returners),
    }


async def run_storm(plan: StormPlan, workdir: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    server = CsmsProcess(workdir)
    await asyncio.to_thread(server.start)
    rng = random.Random(plan.seed)
    stations = []
    for n in range(plan.stations):
        version: Version = "1.6" if n % 2 == 0 else "2.0.1"
        stations.append(LightStation(f"STORM-{'V16' if version == '1.6' else 'V201'}-{n:05d}", version, server.url))
    try:
        began = time.monotonic()
        gate = asyncio.Semaphore(plan.connect_concurrency)

        async def first_connect(station: LightStation) -> bool:
            async with gate:
                try:
                    await station.connect_and_boot(ping_interval=None, compression=None)
                except (*FAILURES, CallFailed):
                    return False
                return True

        connected = sum(await asyncio.gather(*(first_connect(s) for s in stations)))
        initial_connect_s = time.monotonic() - began
        progress(f"storm: {connected}/{plan.stations} connected in {initial_connect_s:.1f} s")
        rss_before = server.resources()["rss_bytes"]
        server.kill()
        for station in stations:
            station.connection = None  # the server is gone: every connection is dead
        killed_at = time.monotonic()
        returners = [Returner(s, random.Random(rng.random()), dropped_at=killed_at) for s in stations]
        deadline = killed_at + plan.timeout_s
        coming_back = [asyncio.create_task(_come_back(plan, r, deadline)) for r in returners]
        restart = asyncio.create_task(asyncio.to_thread(server.start))
        listen_at = await _wait_listening(server.ocpp_port, 120.0)
        await restart
        await asyncio.gather(*coming_back)
        await asyncio.sleep(1.0)
        health = server.health() or {}
        rss_after = server.resources()["rss_bytes"]
        summary: dict[str, Any] = {
            "stations": plan.stations,
            "initially_connected": connected,
            "initial_connect_s": initial_connect_s,
            "fixed_retry_s": plan.fixed_retry_s,
            "listener_s": listen_at - killed_at,
            "all": _group(returners, listen_at),
            "v16": _group([r for r in returners if r.station.version == "1.6"], listen_at),
            "v201": _group([r for r in returners if r.station.version == "2.0.1"], listen_at),
            "connected_after": health.get("stations_connected"),
            "rss_before_mb": rss_before / 2**20,
            "rss_after_mb": rss_after / 2**20,
            "error_kinds": sorted({e for r in returners for e in r.errors}),
        }
    finally:
        await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
        await asyncio.to_thread(server.stop)
    errors = server.error_lines()
    summary["server_errors"] = len(errors)
    summary["server_error_lines"] = errors[:10]
    not_back = summary["all"]["stations"] - summary["all"]["back"]
    summary["violations"] = not_back + len(errors) + (plan.stations - connected)
    progress(
        f"storm: {summary['all']['back']}/{plan.stations} back, p50 {summary['all']['p50_s']}, "
        f"p99 {summary['all']['p99_s']}, all back {summary['all']['max_s']} s after listening"
    )
    return summary
