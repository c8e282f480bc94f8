"""Bystanders: do 1,000 well-behaved stations keep their latency while others attack the server?

A real ``csms serve`` process (default settings) and ``stations`` booted stations that each send a Heartbeat every
``heartbeat_s`` (random phase). Three phases of ``phase_s`` each, in turn:

- **quiet**: nothing else happens; the baseline the other phases are compared with (same run, same machine).
- **idle sockets** (anchor test #15): ``idle_sockets`` TCP connections that send half a handshake and then
  nothing, from a process of their own. The server drops each at ``ocpp.open_timeout``; the attacker opens a new
  one at once, so the pressure holds for the whole phase (~1,000 new connections a second at 10,000). Fresh
  stations also connect and boot during it (can a new station still get in?).
- **deaf stations** (anchor test #30): ``deaf_stations`` stations boot, stop reading and flood CALLs whose
  CALLERRORs pile up towards them; the server must cut each (``ocpp.write_limit`` + ``ocpp.send_timeout``)
  without slowing anyone else.

Per phase: the bystanders' round trips (p50 / p99 / max), their errors, fresh connect-and-boot times; the idle
sockets' lifetimes; whether every deaf station was disconnected. Violations: a bystander call that failed, a deaf
station still connected at the end, an idle socket the server never dropped, an ERROR line in the server log.
Latency is reported (p99 against the quiet phase's), not judged: the machine is shared.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import socket
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.typing import Subprotocol

from benchmarks.resilience.light import (
    FAILURES,
    CallFailed,
    LightStation,
    Version,
    boot_payload,
    percentile,
    version_of,
)
from benchmarks.resilience.server import ADMIN_TOKEN, CsmsProcess

__all__ = ["QUICK_BYSTANDERS", "BystandersPlan", "run_bystanders"]

PHASES = ("quiet", "idle sockets", "deaf stations")


@dataclass(frozen=True)
class BystandersPlan:
    stations: int = 1_000
    heartbeat_s: float = 10.0  # 100 calls/s from 1,000 stations
    phase_s: float = 40.0
    idle_sockets: int = 10_000
    idle_connect_concurrency: int = 200
    fresh_stations: int = 20  # per phase, spread over it
    deaf_stations: int = 2
    # CALLs each deaf station floods: ~300-byte CALLERROR each, ~9 MB towards it, more than loopback's kernel
    # buffers hold (up to 4 MB of send buffer here), so the server's writes must stall.
    deaf_frames: int = 30_000
    connect_concurrency: int = 50
    seed: int = 1


QUICK_BYSTANDERS = BystandersPlan(
    stations=50, heartbeat_s=1.0, phase_s=20.0, idle_sockets=300, fresh_stations=3, deaf_stations=1, deaf_frames=25_000
)


@dataclass
class PhaseResult:
    name: str
    calls: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    fresh_connect_s: list[float] = field(default_factory=list)
    fresh_failed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _percentile_ms(values: list[float], p: float) -> float | None:
    seconds = percentile(values, p)
    return None if seconds is None else 1000 * seconds


async def _heartbeats(station: LightStation, plan: BystandersPlan, until: float, rng: random.Random) -> None:
    due = time.monotonic() + rng.uniform(0, plan.heartbeat_s)
    while due < until:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        due += plan.heartbeat_s
        try:
            await station.heartbeat()
        except (*FAILURES, CallFailed):
            station.errors += 1
            return


async def _fresh_stations(server: CsmsProcess, plan: BystandersPlan, phase: str, result: PhaseResult) -> None:
    """``fresh_stations`` new stations connect and boot, spread over the phase, each closing after its boot."""
    gap = plan.phase_s / (plan.fresh_stations + 1)
    for n in range(plan.fresh_stations):
        await asyncio.sleep(gap)
        station = LightStation(f"FRESH-{phase.replace(' ', '-')}-{n}", version_of(n), server.url)
        began = time.monotonic()
        try:
            await station.connect_and_boot(ping_interval=None, compression=None)
            result.fresh_connect_s.append(time.monotonic() - began)
        except (*FAILURES, CallFailed):
            result.fresh_failed += 1
        finally:
            await station.close()


def idle_sockets_attack(port: int, plan: BystandersPlan, until: float) -> dict[str, Any]:
    """The idle-sockets attacker, in a process of its own."""
    return asyncio.run(_idle_sockets(port, plan, until))


async def _idle_sockets(port: int, plan: BystandersPlan, until: float) -> dict[str, Any]:
    """Hold ``idle_sockets`` half-sent handshakes open until ``until``, replacing each one the server drops."""
    lifetimes: list[float] = []
    held_at_end = 0
    refused = 0
    gate = asyncio.Semaphore(plan.idle_connect_concurrency)
    request = b"GET /ocpp/IDLE HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"  # never finished

    async def one() -> None:
        nonlocal held_at_end, refused
        while time.monotonic() < until:
            async with gate:
                try:
                    async with asyncio.timeout(max(0.1, until - time.monotonic())):
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(request)
                    await writer.drain()
                except TimeoutError:
                    return  # the phase ended while connecting
                except OSError:
                    refused += 1
                    await asyncio.sleep(0.5)
                    continue
            opened = time.monotonic()
            try:
                async with asyncio.timeout(max(0.0, until - opened)):
                    while await reader.read(4096):
                        pass
                lifetimes.append(time.monotonic() - opened)  # the server closed it
            except TimeoutError:
                held_at_end += 1
            except OSError:
                lifetimes.append(time.monotonic() - opened)
            finally:
                writer.transport.abort()

    await asyncio.gather(*(one() for _ in range(plan.idle_sockets)))
    return {
        "idle_sockets": plan.idle_sockets,
        "dropped_by_server": len(lifetimes),
        "held_at_phase_end": held_at_end,
        "connects_refused": refused,
        "lifetime_median_s": sorted(lifetimes)[len(lifetimes) // 2] if lifetimes else None,
        "lifetime_max_s": max(lifetimes) if lifetimes else None,
    }


def _station_connected(api_port: int, identity: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/api/v1/stations/{identity}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    with opener.open(request, timeout=10) as response:
        return bool(json.loads(response.read())["connected"])


async def _deafen(ocpp_port: int, identity: str, version: Version, frames: int) -> ClientConnection:
    """Boot, stop reading, and flood CALLs of an unknown action (each earns a CALLERROR it will never read)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow link: little room at our end
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", ocpp_port))
    deaf = await connect(
        f"ws://127.0.0.1:{ocpp_port}/ocpp/{identity}",
        sock=sock,
        subprotocols=[Subprotocol(f"ocpp{version}")],
        compression=None,
        ping_interval=None,
    )
    await deaf.send(json.dumps([2, "boot", "BootNotification", boot_payload(version)]))
    await deaf.recv()
    deaf.transport.pause_reading()
    frame = Frame(Opcode.TEXT, ('[2,"x","' + "A" * 250 + '",{}]').encode()).serialize(
        mask=True, extensions=[]
    )  # written below the library: its own send would wait for the peer we no longer read from
    for _ in range(frames):
        deaf.transport.write(frame)
    return deaf


def deaf_stations_attack(ocpp_port: int, api_port: int, plan: BystandersPlan, until: float) -> dict[str, Any]:
    """Run in a process of its own, like the idle sockets."""
    return asyncio.run(_deaf_stations(ocpp_port, api_port, plan, until))


async def _deaf_stations(ocpp_port: int, api_port: int, plan: BystandersPlan, until: float) -> dict[str, Any]:
    identities = [f"DEAF-{n}" for n in range(plan.deaf_stations)]
    began = time.monotonic()
    deaf = await asyncio.gather(
        *(_deafen(ocpp_port, identity, version_of(n), plan.deaf_frames) for n, identity in enumerate(identities))
    )
    cut_after: dict[str, float] = {}
    try:
        while time.monotonic() < until and len(cut_after) < len(identities):
            await asyncio.sleep(0.5)
            for identity in identities:
                if identity not in cut_after and not await asyncio.to_thread(_station_connected, api_port, identity):
                    cut_after[identity] = time.monotonic() - began
    finally:
        for connection in deaf:
            connection.transport.abort()
    return {
        "deaf_stations": len(identities),
        "frames_each": plan.deaf_frames,
        "cut_off": len(cut_after),
        "still_connected": len(identities) - len(cut_after),
        "cut_after_max_s": max(cut_after.values()) if cut_after else None,
    }


async def _phase(
    name: str, server: CsmsProcess, plan: BystandersPlan, bystanders: list[LightStation], rng: random.Random
) -> PhaseResult:
    result = PhaseResult(name)
    for station in bystanders:
        station.latencies.clear()
        station.errors = 0
    until = time.monotonic() + plan.phase_s
    work = [_heartbeats(s, plan, until, random.Random(rng.random())) for s in bystanders]
    work.append(_fresh_stations(server, plan, name, result))
    if name == "quiet":
        await asyncio.gather(*work)
    else:
        # The attacker runs in a process of its own: its CPU must not slow this process's event loop, which times
        # the bystanders' round trips. ``until`` is on the monotonic clock, which processes share.
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as attacker:
            loop = asyncio.get_running_loop()
            if name == "idle sockets":
                running = loop.run_in_executor(attacker, idle_sockets_attack, server.ocpp_port, plan, until)
            else:
                running = loop.run_in_executor(
                    attacker, deaf_stations_attack, server.ocpp_port, server.api_port, plan, until
                )
            await asyncio.gather(*work)
            result.extra = await running
    latencies = [lat for s in bystanders for lat in s.latencies]
    result.calls = len(latencies)
    result.errors = sum(s.errors for s in bystanders)
    result.p50_ms, result.p99_ms = _percentile_ms(latencies, 50), _percentile_ms(latencies, 99)
    result.max_ms = 1000 * max(latencies) if latencies else None
    return result


async def run_bystanders(plan: BystandersPlan, workdir: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    server = CsmsProcess(workdir)
    await asyncio.to_thread(server.start)
    rng = random.Random(plan.seed)
    bystanders = [LightStation(f"BY-{n:05d}", version_of(n), server.url) for n in range(plan.stations)]
    results: list[PhaseResult] = []
    try:
        gate = asyncio.Semaphore(plan.connect_concurrency)

        async def boot(station: LightStation) -> None:
            async with gate:
                await station.connect_and_boot(ping_interval=None, compression=None)

        await asyncio.gather(*(boot(s) for s in bystanders))
        progress(f"bystanders: {len(bystanders)} booted")
        for name in PHASES:
            results.append(await _phase(name, server, plan, bystanders, rng))
            last = results[-1]
            progress(f"bystanders: {name}: p99 {last.p99_ms} ms, {last.errors} errors, {last.extra}")
            await asyncio.sleep(2.0)
    finally:
        await asyncio.gather(*(s.close() for s in bystanders), return_exceptions=True)
        await asyncio.to_thread(server.stop)
    errors = server.error_lines()
    idle = next(r.extra for r in results if r.name == "idle sockets") if len(results) == len(PHASES) else {}
    deaf = next(r.extra for r in results if r.name == "deaf stations") if len(results) == len(PHASES) else {}
    violations = (
        sum(r.errors + r.fresh_failed for r in results)
        + int(deaf.get("still_connected", 1))
        + int(idle.get("dropped_by_server", 0) == 0)
        + len(errors)
        + (len(PHASES) - len(results))
    )
    quiet_p99 = results[0].p99_ms if results else None
    return {
        "stations": plan.stations,
        "offered_rate": plan.stations / plan.heartbeat_s,
        "phase_s": plan.phase_s,
        "phases": [
            {
                "name": r.name,
                "calls": r.calls,
                "errors": r.errors,
                "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms,
                "max_ms": r.max_ms,
                "p99_vs_quiet": (r.p99_ms / quiet_p99) if r.p99_ms and quiet_p99 else None,
                "fresh_connected": len(r.fresh_connect_s),
                "fresh_failed": r.fresh_failed,
                "fresh_max_s": max(r.fresh_connect_s) if r.fresh_connect_s else None,
                **r.extra,
            }
            for r in results
        ],
        "server_errors": errors[:5],
        "violations": violations,
    }
