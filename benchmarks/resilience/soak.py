"""Soak (many connections with realistic traffic, RSS trend) and churn (connect/disconnect cycles, half dirty).

Soak: up to ``connections`` stations connect (a bounded number of handshakes at a time) and boot; connecting
stops at the first failures that pile up, and the reason is recorded (file descriptors, memory, handshake
timeouts). Every station then sends a Heartbeat every ``heartbeat_s`` and a ``transaction_share`` of them
MeterValues every ``meter_s``, each on its own random phase. The server's RSS, CPU and open fds are sampled;
RSS growth is measured from the end of the warm-up to the end of the run against ``growth_bound_pct``, and RSS
per connection against the same server idle (before anyone connected).

Churn: ``cycles`` of connect, boot, heartbeat, disconnect, ``concurrency`` at a time, every other one dirty (TCP
reset, no close frame). The server's sessions, asyncio tasks (``/metrics``), open fds and RSS are compared with
their values before the churn.
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.resilience.light import FAILURES, CallFailed, LightStation, percentile, reset, version_of
from benchmarks.resilience.server import CsmsProcess

__all__ = ["ChurnPlan", "SoakPlan", "run_churn", "run_soak"]


@dataclass(frozen=True)
class SoakPlan:
    connections: int = 10_000
    heartbeat_s: float = 60.0
    meter_s: float = 10.0
    transaction_share: float = 0.25
    warmup_s: float = 60.0
    duration_s: float = 240.0
    sample_s: float = 5.0
    connect_concurrency: int = 50
    growth_bound_pct: float = 10.0
    seed: int = 1


QUICK_SOAK = SoakPlan(
    connections=200, heartbeat_s=2.0, meter_s=1.0, warmup_s=3.0, duration_s=6.0, sample_s=1.0, growth_bound_pct=50.0
)


@dataclass(frozen=True)
class ChurnPlan:
    cycles: int = 10_000
    concurrency: int = 50
    settle_s: float = 30.0  # longest wait for the server to come back to its values before
    seed: int = 1


QUICK_CHURN = ChurnPlan(cycles=200, concurrency=20, settle_s=15.0)


async def _connect_fleet(
    stations: list[LightStation], concurrency: int, progress: Callable[[str], None]
) -> tuple[list[LightStation], str]:
    """Connect and boot in order, ``concurrency`` at a time; stop at the first pile-up of failures."""
    connected: list[LightStation] = []
    failures: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    began = time.monotonic()

    async def one(station: LightStation) -> None:
        if len(failures) >= 20:
            return
        async with gate:
            if len(failures) >= 20:
                return
            try:
                await station.connect_and_boot(ping_interval=None, compression=None)
            except (*FAILURES, CallFailed) as exc:
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            connected.append(station)
            if len(connected) % 2000 == 0:
                progress(f"soak: {len(connected)} connected ({time.monotonic() - began:.0f} s)")

    await asyncio.gather(*(one(s) for s in stations))
    if not failures:
        return connected, "every requested connection was made"
    return connected, f"connecting stopped after {len(failures)} failures, first: {failures[0]}"


async def _traffic(
    station: LightStation, plan: SoakPlan, metering: bool, until: float, rng: random.Random, counts: dict[str, int]
) -> None:
    next_heartbeat = time.monotonic() + rng.uniform(0, plan.heartbeat_s)
    next_meter = time.monotonic() + rng.uniform(0, plan.meter_s) if metering else float("inf")
    energy = rng.randrange(0, 100_000)
    while True:
        due = min(next_heartbeat, next_meter)
        if due >= until:
            return
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        try:
            if next_heartbeat <= next_meter:
                next_heartbeat += plan.heartbeat_s
                await station.heartbeat()
            else:
                next_meter += plan.meter_s
                energy += rng.randrange(1, 300)
                await station.meter_values(energy)
            counts["answered"] += 1
        except (*FAILURES, CallFailed):
            counts["errors"] += 1
            return


async def run_soak(plan: SoakPlan, workdir: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    server = CsmsProcess(workdir)
    await asyncio.to_thread(server.start)
    rng = random.Random(plan.seed)
    stations = [LightStation(f"SOAK-{n:05d}", version_of(n), server.url) for n in range(plan.connections)]
    samples: list[tuple[float, int, int]] = []
    try:
        # Warm-up: the first stations open the database's WAL files, load caches and compile statements; that
        # is the idle server's state, not something the connections cost.
        warm = [LightStation(f"SOAK-WARM-{n}", version_of(n), server.url) for n in range(10)]
        for station in warm:
            await station.connect_and_boot(ping_interval=None, compression=None)
            await station.heartbeat()
            await station.meter_values(1)
            await station.close()
        await asyncio.sleep(2.0)
        idle = server.resources()
        began = time.monotonic()
        connected, stop_reason = await _connect_fleet(stations, plan.connect_concurrency, progress)
        connect_s = time.monotonic() - began
        progress(f"soak: {len(connected)} connected in {connect_s:.0f} s; {stop_reason}")
        start = time.monotonic()
        until = start + plan.warmup_s + plan.duration_s
        counts = {"answered": 0, "errors": 0}
        metering = {s.identity for s in connected[: int(len(connected) * plan.transaction_share)]}
        traffic = [
            asyncio.create_task(_traffic(s, plan, s.identity in metering, until, random.Random(rng.random()), counts))
            for s in connected
        ]
        process = psutil.Process(server.pid)
        cpu_at_warm = 0.0
        rss_warm = 0
        warm_answered = 0
        while time.monotonic() < until:
            await asyncio.sleep(plan.sample_s)
            now = time.monotonic() - start
            info = server.resources()
            samples.append((now, info["rss_bytes"], info["open_fds"]))
            if not rss_warm and now >= plan.warmup_s:
                rss_warm = info["rss_bytes"]
                cpu_at_warm = sum(process.cpu_times()[:2])
                warm_answered = counts["answered"]
                for station in connected:
                    station.latencies.clear()  # latencies count from the end of the warm-up
        cpu_s = sum(process.cpu_times()[:2]) - cpu_at_warm
        await asyncio.gather(*traffic)
        rss_end = samples[-1][1]
        fds_peak = max(fds for _, _, fds in samples)
        latencies = [lat for s in connected for lat in s.latencies]
        await asyncio.gather(*(s.close() for s in connected), return_exceptions=True)
        await asyncio.sleep(3.0)
        after = server.resources()
        health = server.health() or {}
    finally:
        await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
        await asyncio.to_thread(server.stop)
    errors = server.error_lines()
    growth = (rss_end - rss_warm) / rss_warm * 100 if rss_warm else None
    n = len(connected)
    offered = n / plan.heartbeat_s + len(metering) / plan.meter_s
    summary: dict[str, Any] = {
        "target": plan.connections,
        "connected": n,
        "stop_reason": stop_reason,
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "connect_s": connect_s,
        "heartbeat_s": plan.heartbeat_s,
        "meter_s": plan.meter_s,
        "transaction_share": plan.transaction_share,
        "offered_rate": offered,
        "warmup_s": plan.warmup_s,
        "duration_s": plan.duration_s,
        "answered": counts["answered"] - warm_answered,
        "errors": counts["errors"],
        "p50_ms": (percentile(latencies, 50) or 0) * 1000,
        "p99_ms": (percentile(latencies, 99) or 0) * 1000,
        "max_ms": max(latencies, default=0) * 1000,
        "rss_idle_mb": idle["rss_bytes"] / 2**20,
        "rss_warm_mb": rss_warm / 2**20,
        "rss_end_mb": rss_end / 2**20,
        "rss_max_mb": max(rss for _, rss, _ in samples) / 2**20,
        "growth_pct": growth,
        "growth_bound_pct": plan.growth_bound_pct,
        "kb_per_connection": (rss_warm - idle["rss_bytes"]) / n / 1024 if n else None,
        "cpu_pct": cpu_s / plan.duration_s * 100,
        "fds_idle": idle["open_fds"],
        "fds_peak": fds_peak,
        "fds_after": after["open_fds"],
        "connected_after": health.get("stations_connected"),
        "rss_samples": [(round(t, 1), rss) for t, rss, _ in samples],
        "server_errors": len(errors),
        "server_error_lines": errors[:10],
    }
    summary["violations"] = (
        counts["errors"]
        + len(errors)
        + (1 if growth is None or growth > plan.growth_bound_pct else 0)
        + (1 if after["open_fds"] > idle["open_fds"] else 0)
    )
    progress(
        f"soak: {n} connections, {summary['answered']} answered, {counts['errors']} errors, "
        f"p99 {summary['p99_ms']:.1f} ms, RSS {summary['rss_warm_mb']:.0f} -> {summary['rss_end_mb']:.0f} MB"
    )
    return summary


async def _server_state(server: CsmsProcess) -> dict[str, Any]:
    metrics = await asyncio.to_thread(server.metrics)
    info = server.resources()
    return {
        "sessions": int(metrics.get("csms_sessions_registered", -1)),
        "tasks": int(metrics.get("csms_asyncio_tasks", -1)),
        "fds": info["open_fds"],
        "rss_mb": info["rss_bytes"] / 2**20,
    }


async def run_churn(plan: ChurnPlan, workdir: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    server = CsmsProcess(workdir)
    await asyncio.to_thread(server.start)
    failed: list[str] = []
    dirty = 0

    async def cycle(n: int) -> None:
        nonlocal dirty
        station = LightStation(f"CHURN-{n % 1000:04d}-{n // 1000}", version_of(n // 2), server.url)
        try:
            connection = await station.connect_and_boot(ping_interval=None, compression=None)
            await station.heartbeat()
        except (*FAILURES, CallFailed) as exc:
            failed.append(type(exc).__name__)
            await station.close()
            return
        if n % 2:
            dirty += 1
            reset(connection)
            await connection.wait_closed()
        else:
            await connection.close()

    try:
        for n in range(20):  # warm-up: lazily created state is not a leak
            await cycle(n)
        await asyncio.sleep(2.0)
        dirty = 0
        before = await _server_state(server)
        began = time.monotonic()
        gate = asyncio.Semaphore(plan.concurrency)

        async def limited(n: int) -> None:
            async with gate:
                await cycle(n)

        await asyncio.gather(*(limited(n) for n in range(plan.cycles)))
        churn_s = time.monotonic() - began
        progress(f"churn: {plan.cycles} cycles in {churn_s:.0f} s, {len(failed)} failed")
        deadline = time.monotonic() + plan.settle_s
        after = await _server_state(server)
        while time.monotonic() < deadline and (
            after["sessions"] > before["sessions"] or after["tasks"] > before["tasks"] or after["fds"] > before["fds"]
        ):
            await asyncio.sleep(0.5)
            after = await _server_state(server)
    finally:
        await asyncio.to_thread(server.stop)
    errors = server.error_lines()
    leaked = sum(after[k] > before[k] for k in ("sessions", "tasks", "fds"))
    summary = {
        "cycles": plan.cycles,
        "concurrency": plan.concurrency,
        "dirty": dirty,
        "failed": len(failed),
        "failure_kinds": sorted(set(failed)),
        "churn_s": churn_s,
        "before": before,
        "after": after,
        "rss_growth_pct": (after["rss_mb"] - before["rss_mb"]) / before["rss_mb"] * 100,
        "server_errors": len(errors),
        "server_error_lines": errors[:10],
        "violations": leaked + len(failed) + len(errors),
    }
    progress(f"churn: before {before}, after {after}")
    return summary
