"""Half-open connections: a booted station's peer vanishes without FIN; how long until the server frees it?

Cases, run side by side on one server:
- *silent*: the station stops reading (so never answers a ping) and never sends again; its kernel still ACKs.
- *blackhole*: every packet of the connection is dropped in both directions (``iptables`` on loopback, only when
  the harness may use it; the rules name the connection's two ports and are always removed).
- *reconnect*: the station goes silent and at once reconnects with a new connection (as a charger does after its
  own link broke): how long until the new connection's BootNotification is answered.

Freed = the station's API view says it is no longer connected, and the server holds no socket of that
connection any more (psutil).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.resilience.light import LightStation
from benchmarks.resilience.server import ADMIN_TOKEN, CsmsProcess, ServerOptions
from csms.config import OcppSettings

__all__ = ["HalfOpenPlan", "run_halfopen"]


@dataclass(frozen=True)
class HalfOpenPlan:
    # The full run measures the server's defaults.
    ping_interval: float = OcppSettings.model_fields["ping_interval"].default
    ping_timeout: float = OcppSettings.model_fields["ping_timeout"].default
    close_timeout: float = OcppSettings.model_fields["close_timeout"].default
    timeout_s: float = 300.0


QUICK_HALFOPEN = HalfOpenPlan(ping_interval=2.0, ping_timeout=2.0, close_timeout=1.0, timeout_s=30.0)


def _server_holds(pid: int, client_port: int) -> bool:
    """Whether the server process still has a socket whose peer is ``client_port``."""
    return any(c.raddr and c.raddr.port == client_port for c in psutil.Process(pid).net_connections(kind="tcp"))


async def _connected(api: httpx.AsyncClient, identity: str) -> bool:
    response = await api.get(f"/api/v1/stations/{identity}")
    response.raise_for_status()
    return bool(response.json()["connected"])


def iptables_usable() -> bool:
    if shutil.which("iptables") is None:
        return False
    probe = subprocess.run(["iptables", "-w", "-S", "INPUT"], capture_output=True, timeout=10)
    return probe.returncode == 0


@contextlib.contextmanager
def blackhole(client_port: int, server_port: int) -> Iterator[None]:
    """Drop every loopback packet between the two ports, both ways, until the block exits."""
    rules = [
        ["INPUT", "-i", "lo", "-p", "tcp", "--sport", str(client_port), "--dport", str(server_port), "-j", "DROP"],
        ["INPUT", "-i", "lo", "-p", "tcp", "--sport", str(server_port), "--dport", str(client_port), "-j", "DROP"],
    ]
    added = []
    try:
        for rule in rules:
            subprocess.run(["iptables", "-w", "-I", *rule], check=True, capture_output=True, timeout=10)
            added.append(rule)
        yield
    finally:
        for rule in added:
            subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True, timeout=10)


async def _until_freed(
    server: CsmsProcess, api: httpx.AsyncClient, identity: str, client_port: int, since: float, timeout: float
) -> dict[str, Any]:
    freed_s: float | None = None
    while time.monotonic() - since < timeout:
        if freed_s is None and not await _connected(api, identity):
            freed_s = time.monotonic() - since
        if freed_s is not None and not _server_holds(server.pid, client_port):
            return {"freed_s": freed_s, "fd_released": True, "fd_released_s": time.monotonic() - since}
        await asyncio.sleep(0.1)
    return {"freed_s": freed_s, "fd_released": False}


async def _vanish_then_free(
    server: CsmsProcess, api: httpx.AsyncClient, identity: str, how: str, timeout: float
) -> dict[str, Any]:
    station = LightStation(identity, "1.6", server.url)
    connection = await station.connect_and_boot(ping_interval=None, compression=None)
    client_port = connection.transport.get_extra_info("sockname")[1]
    case: dict[str, Any] = {"how": how}
    try:
        connection.transport.pause_reading()  # never reads again: no pong, no close frame, no FIN
        since = time.monotonic()
        if how.startswith("blackhole"):
            with blackhole(client_port, server.ocpp_port):
                case |= await _until_freed(server, api, identity, client_port, since, timeout)
        else:
            case |= await _until_freed(server, api, identity, client_port, since, timeout)
        again = LightStation(identity, "1.6", server.url)
        await again.connect_and_boot(ping_interval=None, compression=None)
        case["reconnected"] = await _connected(api, identity)
        await again.close()
    finally:
        connection.transport.abort()
    return case


async def _reconnect_while_half_open(server: CsmsProcess, api: httpx.AsyncClient, identity: str) -> dict[str, Any]:
    station = LightStation(identity, "1.6", server.url)
    connection = await station.connect_and_boot(ping_interval=None, compression=None)
    case: dict[str, Any] = {"how": "silent, then the station reconnects at once"}
    try:
        connection.transport.pause_reading()
        began = time.monotonic()
        again = LightStation(identity, "1.6", server.url, call_timeout=60.0)
        await again.connect_and_boot(ping_interval=None, compression=None)
        case["boot_answered_s"] = time.monotonic() - began
        case["freed_s"] = case["boot_answered_s"]  # the new session replaced the half-open one
        case["reconnected"] = await _connected(api, identity)
        client_port = connection.transport.get_extra_info("sockname")[1]
        deadline = time.monotonic() + 30
        while _server_holds(server.pid, client_port) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        case["fd_released"] = not _server_holds(server.pid, client_port)
        case["fd_released_s"] = time.monotonic() - began
        await again.close()
    finally:
        connection.transport.abort()
    return case


async def run_halfopen(plan: HalfOpenPlan, workdir: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    options = ServerOptions(
        ping_interval=plan.ping_interval, ping_timeout=plan.ping_timeout, close_timeout=plan.close_timeout
    )
    server = CsmsProcess(workdir, options)
    await asyncio.to_thread(server.start)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.api_port}", headers=headers) as api:
            jobs = [
                _vanish_then_free(
                    server, api, "HALFOPEN-SILENT", "silent (stops reading, kernel still ACKs)", plan.timeout_s
                ),
                _reconnect_while_half_open(server, api, "HALFOPEN-RECONNECT"),
            ]
            if iptables_usable():
                jobs.append(
                    _vanish_then_free(
                        server, api, "HALFOPEN-DROP", "blackhole (every packet dropped, iptables)", plan.timeout_s
                    )
                )
            else:
                progress("halfopen: iptables not usable here; blackhole case skipped")
            cases = list(await asyncio.gather(*jobs))
    finally:
        await asyncio.to_thread(server.stop)
    errors = server.error_lines()
    bound = plan.ping_interval + plan.ping_timeout + plan.close_timeout
    late = [c for c in cases if c.get("freed_s") is None or c["freed_s"] > bound + 5 or not c.get("fd_released")]
    summary = {
        "ping_interval": plan.ping_interval,
        "ping_timeout": plan.ping_timeout,
        "close_timeout": plan.close_timeout,
        "bound_s": bound,
        "cases": cases,
        "server_errors": len(errors),
        "server_error_lines": errors[:10],
        "violations": len(late) + len(errors) + sum(not c.get("reconnected") for c in cases),
    }
    for case in cases:
        progress(f"halfopen: {case}")
    return summary
