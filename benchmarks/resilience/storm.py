"""Reconnect storm: a booted fleet loses the server (SIGKILL), the server restarts, everyone comes back at once.

Half the fleet is 1.6 with no back-off rule (1.6 has none): each station retries at once and then every
``fixed_retry_s``, so they arrive in lockstep. The other half is 2.0.1 with the spec's reconnect back-off (§5.3,
RetryBackOffWaitMinimum / RetryBackOffRandomRange / RetryBackOffRepeatTimes): the first wait is the minimum plus
a random part, each further wait doubles, capped. A station is *back* when its BootNotification was accepted
and a Heartbeat answered on the new connection. Times count from the moment the restarted listener accepts TCP.

With ``basic_auth`` every station is provisioned with security profile 1 and its own password through the API
before the fleet first connects, and logs in with HTTP Basic auth: the restarted server verifies every password
at the production argon2id cost, with a cold cache. Every station then keeps sending a Heartbeat every
``steady_heartbeat_s``; round trips of the calls sent from ``steady_from_s`` to ``steady_until_s`` after the
listener came back are the steady state after the storm (anchor test #27: p99 < 1 s from 120 s).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.resilience.light import FAILURES, CallFailed, LightStation, percentile, version_of
from benchmarks.resilience.server import ADMIN_TOKEN, CsmsProcess

__all__ = ["QUICK_STORM", "QUICK_STORM_AUTH", "STORM_AUTH", "StormPlan", "run_storm"]


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
    basic_auth: bool = False
    steady_heartbeat_s: float | None = None  # None: no steady-state phase after the storm
    steady_from_s: float = 120.0
    steady_until_s: float = 150.0


QUICK_STORM = StormPlan(stations=100, timeout_s=60.0)
STORM_AUTH = StormPlan(basic_auth=True, steady_heartbeat_s=10.0)
QUICK_STORM_AUTH = StormPlan(
    stations=60, timeout_s=60.0, basic_auth=True, steady_heartbeat_s=1.0, steady_from_s=20.0, steady_until_s=28.0
)


_CHECKS = ("argon2", "remembered", "joined")  # how the server decided Basic-auth logins (csms_password_checks)


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


def password_of(identity: str) -> str:
    """A station's password: 20 hex digits, valid for 1.6 AuthorizationKey and 2.0.1 BasicAuthPassword alike."""
    return hashlib.sha256(identity.encode()).hexdigest()[:20]


def _login_options(plan: StormPlan, station: LightStation) -> dict[str, Any]:
    options: dict[str, Any] = {"ping_interval": None, "compression": None}
    if plan.basic_auth:
        pair = base64.b64encode(f"{station.identity}:{password_of(station.identity)}".encode()).decode()
        options["additional_headers"] = {"Authorization": f"Basic {pair}"}
    return options


def _provision(server: CsmsProcess, station: LightStation) -> None:
    """Security profile 1 and the station's password, recorded through the API before it first connects."""
    body = {"profile": 1, "password": password_of(station.identity), "ocpp_version": station.version}
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.api_port}/api/v1/stations/{station.identity}/security",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        response.read()


async def _steady(plan: StormPlan, stations: list[LightStation], listen_at: float, rng: random.Random) -> list[float]:
    """Heartbeats from everyone until ``steady_until_s``; the round trips of those sent from ``steady_from_s``."""
    assert plan.steady_heartbeat_s is not None
    period, until = plan.steady_heartbeat_s, listen_at + plan.steady_until_s
    measured: list[float] = []

    async def beat(station: LightStation, phase: float) -> None:
        due = time.monotonic() + phase
        while due < until:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due += period
            sent = time.monotonic()
            try:
                await station.heartbeat()
            except (*FAILURES, CallFailed):
                station.errors += 1
                return
            if sent >= listen_at + plan.steady_from_s:
                measured.append(station.latencies[-1])

    await asyncio.gather(*(beat(s, rng.uniform(0, period)) for s in stations if s.connection is not None))
    return measured


async def _come_back(plan: StormPlan, returner: Returner, deadline: float) -> None:
    """Retry until booted and a heartbeat answered, by the station's version's rule."""
    station = returner.station
    wait = 0.0 if station.version == "1.6" else plan.backoff_min_s + returner.rng.uniform(0, plan.backoff_random_s)
    while time.monotonic() < deadline:
        await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        returner.attempts += 1
        attempt_at = time.monotonic()
        try:
            await station.connect_and_boot(**_login_options(plan, station))
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


def _group(returners: list[Returner], listen_at: float) -> dict[str, Any]:
    times = [r.back_at - listen_at for r in returners if r.back_at is not None]
    serve = [r.serve_s for r in returners if r.serve_s is not None]
    return {
        "serve_p50_s": percentile(serve, 50),
        "serve_p99_s": percentile(serve, 99),
        "stations": len(returners),
        "back": len(times),
        "p50_s": percentile(times, 50),
        "p99_s": percentile(times, 99),
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
        version = version_of(n)
        stations.append(LightStation(f"STORM-{'V16' if version == '1.6' else 'V201'}-{n:05d}", version, server.url))
    try:
        provision_s = None
        if plan.basic_auth:
            began = time.monotonic()
            provisioning = asyncio.Semaphore(4)

            async def provision(station: LightStation) -> None:
                async with provisioning:
                    await asyncio.to_thread(_provision, server, station)

            await asyncio.gather(*(provision(s) for s in stations))
            provision_s = time.monotonic() - began
            progress(f"storm: {plan.stations} stations given profile 1 and a password in {provision_s:.1f} s")
        began = time.monotonic()
        gate = asyncio.Semaphore(plan.connect_concurrency)

        async def first_connect(station: LightStation) -> bool:
            async with gate:
                try:
                    await station.connect_and_boot(**_login_options(plan, station))
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
        metrics = await asyncio.to_thread(server.metrics)
        checks = {how: int(metrics.get(f'csms_password_checks_total{{how="{how}"}}', 0)) for how in _CHECKS}
        steady: list[float] = []
        if plan.steady_heartbeat_s is not None:
            for station in stations:
                station.errors = 0
            steady = await _steady(plan, stations, listen_at, random.Random(rng.random()))
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
            "basic_auth": plan.basic_auth,
            "provision_s": provision_s,
            "password_checks": checks,  # by the restarted server, until everyone was back
        }
        if plan.steady_heartbeat_s is not None:
            summary["steady"] = {
                "heartbeat_s": plan.steady_heartbeat_s,
                "from_s": plan.steady_from_s,
                "until_s": plan.steady_until_s,
                "calls": len(steady),
                "errors": sum(s.errors for s in stations),
                "p50_ms": 1000 * p50 if (p50 := percentile(steady, 50)) is not None else None,
                "p99_ms": 1000 * p99 if (p99 := percentile(steady, 99)) is not None else None,
            }
    finally:
        await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
        await asyncio.to_thread(server.stop)
    errors = server.error_lines()
    summary["server_errors"] = len(errors)
    summary["server_error_lines"] = errors[:10]
    not_back = summary["all"]["stations"] - summary["all"]["back"]
    steady_errors = summary.get("steady", {}).get("errors", 0)
    summary["violations"] = not_back + len(errors) + (plan.stations - connected) + steady_errors
    progress(
        f"storm: {summary['all']['back']}/{plan.stations} back, p50 {summary['all']['p50_s']}, "
        f"p99 {summary['all']['p99_s']}, all back {summary['all']['max_s']} s after listening"
    )
    return summary
