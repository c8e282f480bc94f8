"""What charger security costs, and whether a flood of bad logins hurts the stations already connected.

``python -m benchmarks.run_auth``          rewrites the "Charger security" section of BENCHMARKS.md
``python -m benchmarks.run_auth --quick``  small counts, seconds; writes benchmarks/results/BENCHMARKS-auth-quick.md
                                           unless --output

The CSMS runs as its own process (``python -m csms serve``, a temporary config, SQLite database and trustme
certificates, default argon2id cost) on loopback; the clients run in this process.

1. Connect cost per profile: sequential websocket handshakes (open, upgrade, close) for profile 0 (no check),
   1 (Basic auth: one argon2id verification), 2 (TLS + Basic) and 3 (mutual TLS), as the median time per
   handshake and its ratio to profile 0 measured in the same run.
2. Flood: one connected station sends Heartbeats back to back and times each round trip; first alone, then while
   ``flood`` concurrent clients keep sending wrong passwords for distinct profile-1 identities (the per-IP throttle
   is raised so every attempt is hashed). Reported: heartbeat round-trip p50/p99 with and without the flood (and
   their ratio) and the refused logins per second.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import trustme
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
BEGIN_MARK = "<!-- sec:begin -->"
END_MARK = "<!-- sec:end -->"
TOKEN = "bench-admin-token-0123456789"
PASSWORD = "bench-Passw0rd-0123"
CPO = "Bench CPO"


@dataclass(frozen=True)
class Plan:
    handshakes: int  # per profile
    flood: int  # concurrent bad-login clients
    flood_seconds: float
    heartbeats_alone: int


FULL = Plan(handshakes=200, flood=32, flood_seconds=10.0, heartbeats_alone=500)
QUICK = Plan(handshakes=5, flood=4, flood_seconds=1.0, heartbeats_alone=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Pki:
    """A server CA with an RSA server certificate for 127.0.0.1 and a station CA, written to ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.server_ca = trustme.CA()
        self.station_ca = trustme.CA()
        self.server_pem = workdir / "server.pem"
        self.station_ca_pem = workdir / "stations-ca.pem"
        server = self.server_ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.RSA)
        server.private_key_and_cert_chain_pem.write_to_path(str(self.server_pem))
        self.station_ca.cert_pem.write_to_path(str(self.station_ca_pem))

    def client(self, identity: str | None = None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.server_ca.configure_trust(context)
        if identity is not None:
            cert = self.station_ca.issue_cert(f"{identity.lower()}.bench", common_name=identity, organization_name=CPO)
            cert.configure_cert(context)
        return context


class Server:
    """``python -m csms serve`` with a temporary config and database; stopped with SIGINT."""

    def __init__(self, workdir: Path, pki: Pki) -> None:
        self.ocpp_port, self.tls_port, self.api_port = free_port(), free_port(), free_port()
        self.config = workdir / "csms.toml"
        self.config.write_text(
            f"""[ocpp]
host = "127.0.0.1"
port = {self.ocpp_port}
heartbeat_interval = 3600
[api]
host = "127.0.0.1"
port = {self.api_port}
admin_token = "{TOKEN}"
[database]
url = "sqlite+aiosqlite:///{workdir / "auth.db"}"
[security]
tls_port = {self.tls_port}
tls_cert_file = "{pki.server_pem}"
tls_key_file = "{pki.server_pem}"
tls_client_ca_file = "{pki.station_ca_pem}"
cpo_name = "{CPO}"
failures_per_ip = 1000000
failures_per_identity = 10000
[log]
level = "error"
"""
        )
        self.log_path = workdir / "server.log"
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        env = dict(os.environ)
        env.pop("PYTHONASYNCIODEBUG", None)  # never measure asyncio's debug mode
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "csms", "serve", "--config", str(self.config)],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        began = time.monotonic()
        async with httpx.AsyncClient(timeout=1.0) as http:
            while time.monotonic() - began < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"csms exited during start-up:\n{self.log_path.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{self.api_port}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError("csms did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()

    async def provision(self, identity: str, profile: int) -> None:
        body: dict[str, Any] = {"profile": profile}
        if profile in (1, 2):
            body["password"] = PASSWORD
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.put(
                f"http://127.0.0.1:{self.api_port}/api/v1/stations/{identity}/security",
                json=body,
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            response.raise_for_status()


def basic(identity: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{identity}:{password}".encode()).decode()}


async def open_ws(
    url: str, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None
) -> ClientConnection:
    return await connect(url, subprotocols=["ocpp1.6"], additional_headers=headers, ssl=context, open_timeout=30)  # type: ignore[list-item]


async def timed_handshakes(count: int, attempt: Callable[[], Awaitable[None]]) -> list[float]:
    times = []
    for _ in range(count):
        began = time.perf_counter()
        await attempt()
        times.append(time.perf_counter() - began)
    return times


async def connect_costs(server: Server, pki: Pki, plan: Plan) -> dict[str, float]:
    """Median seconds per handshake, per profile."""
    plain = f"ws://127.0.0.1:{server.ocpp_port}/ocpp"
    tls = f"wss://127.0.0.1:{server.tls_port}/ocpp"
    for identity, profile in [("P0", 0), ("P1", 1), ("P2", 2), ("P3", 3)]:
        await server.provision(identity, profile)
    tls_context, mtls_context = pki.client(), pki.client("P3")
    cases: dict[str, tuple[str, dict[str, str] | None, ssl.SSLContext | None]] = {
        "profile 0 (ws, no check)": (f"{plain}/P0", None, None),
        "profile 1 (ws, Basic auth)": (f"{plain}/P1", basic("P1", PASSWORD), None),
        "profile 2 (TLS, Basic auth)": (f"{tls}/P2", basic("P2", PASSWORD), tls_context),
        "profile 3 (mutual TLS)": (f"{tls}/P3", None, mtls_context),
    }
    medians: dict[str, float] = {}
    for name, (url, headers, context) in cases.items():

        async def attempt(url: str = url, headers: Any = headers, context: Any = context) -> None:
            ws = await open_ws(url, headers, context)
            await ws.close()

        await timed_handshakes(2, attempt)  # warm-up
        medians[name] = statistics.median(await timed_handshakes(plan.handshakes, attempt))
    return medians


async def heartbeat_times(ws: ClientConnection, count: int | None = None, seconds: float | None = None) -> list[float]:
    """Round trips of back-to-back Heartbeats: ``count`` of them, or as many as fit in ``seconds``."""
    times: list[float] = []
    began = time.monotonic()
    while (count is None or len(times) < count) and (seconds is None or time.monotonic() - began < seconds):
        began_one = time.perf_counter()
        await ws.send(json.dumps([2, f"h{len(times)}", "Heartbeat", {}]))
        reply = json.loads(await ws.recv())
        if reply[0] != 3:
            raise RuntimeError(f"Heartbeat answered {reply}")
        times.append(time.perf_counter() - began_one)
    return times


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def flood(server: Server, plan: Plan) -> dict[str, float]:
    plain = f"ws://127.0.0.1:{server.ocpp_port}/ocpp"
    for n in range(plan.flood):
        await server.provision(f"F{n}", 1)
    live = await open_ws(f"{plain}/LIVE")
    await live.send(json.dumps([2, "b", "BootNotification", {"chargePointVendor": "B", "chargePointModel": "B"}]))
    if json.loads(await live.recv())[0] != 3:
        raise RuntimeError("boot of the live station failed")
    alone = await heartbeat_times(live, count=plan.heartbeats_alone)
    refused, accepted = [0], [0]
    stop = asyncio.Event()

    async def bad_logins(n: int) -> None:
        while not stop.is_set():
            try:
                ws = await open_ws(f"{plain}/F{n}", basic(f"F{n}", f"wrong-{refused[0]:012d}"))
            except InvalidStatus as exc:
                if exc.response.status_code != 401:
                    raise
                refused[0] += 1
            else:
                accepted[0] += 1
                await ws.close()

    flooders = [asyncio.create_task(bad_logins(n)) for n in range(plan.flood)]
    await asyncio.sleep(0.2)  # let the flood reach the hash pool
    refused_before = refused[0]
    during = await heartbeat_times(live, seconds=plan.flood_seconds)
    refused_during = refused[0] - refused_before
    stop.set()
    await asyncio.gather(*flooders)
    await live.close()
    return {
        "heartbeats_alone": len(alone),
        "heartbeats_during": len(during),
        "p50_alone_ms": 1000 * quantile(alone, 0.5),
        "p99_alone_ms": 1000 * quantile(alone, 0.99),
        "p50_flood_ms": 1000 * quantile(during, 0.5),
        "p99_flood_ms": 1000 * quantile(during, 0.99),
        "refused_per_s": refused_during / plan.flood_seconds,
        "refused": refused_during,
        "wrongly_accepted": accepted[0],
    }


async def measure(plan: Plan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="csms-auth-bench-") as tmp:
        workdir = Path(tmp)
        pki = Pki(workdir)
        server = Server(workdir, pki)
        await server.start()
        try:
            costs = await connect_costs(server, pki, plan)
            flooded = await flood(server, plan)
        finally:
            server.stop()
    return {"plan": asdict(plan), "handshake_median_s": costs, "flood": flooded}


def render(data: dict[str, Any], command: str) -> str:
    costs: dict[str, float] = data["handshake_median_s"]
    base = next(iter(costs.values()))
    f = data["flood"]
    plan = data["plan"]
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    lines = [
        BEGIN_MARK,
        "## Charger security (connect cost, bad-login flood)",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at `{commit}` ({machine}); edit outside "
        "the markers. The CSMS (`python -m csms serve`, default argon2id cost: 19 MiB, 2 passes, 2 hash threads) in "
        "its own process, clients in another, loopback. Ratios are against profile 0 / the no-flood run measured in "
        "the same run (the machine is shared).",
        "",
        f"Connect cost: {plan['handshakes']} sequential handshakes per profile (open, upgrade, close).",
        "",
        "| profile | median per handshake | vs profile 0 |",
        "|---|---|---|",
        *(f"| {name} | {1000 * value:.1f} ms | {value / base:.1f}x |" for name, value in costs.items()),
        "",
        f"Bad-login flood: {plan['flood']} clients sending wrong passwords back to back for "
        f"{plan['flood_seconds']:g} s "
        "(throttling raised so every attempt is hashed) while one connected station sends Heartbeats back to back.",
        "",
        "| | heartbeat p50 | heartbeat p99 | heartbeats | wrong logins refused |",
        "|---|---|---|---|---|",
        f"| alone | {f['p50_alone_ms']:.2f} ms | {f['p99_alone_ms']:.2f} ms | {f['heartbeats_alone']} | |",
        f"| during the flood | {f['p50_flood_ms']:.2f} ms | {f['p99_flood_ms']:.2f} ms | {f['heartbeats_during']} | "
        f"{f['refused']} ({f['refused_per_s']:.0f}/s) |",
        f"| ratio | {f['p50_flood_ms'] / f['p50_alone_ms']:.1f}x | {f['p99_flood_ms'] / f['p99_alone_ms']:.1f}x | | |",
        "",
        "Hashes are verified on the security service's own threads, so the event loop keeps answering; what the flood "
        "costs the live station is CPU: on 2 cores, the hash threads, the flooding clients and the server's loop "
        "share them. With the default throttle (5 failures per identity, 50 per IP per minute) such a flood from one "
        "address is refused with 429 without hashing after its first 50 attempts.",
        END_MARK,
        "",
    ]
    return "\n".join(lines)


def write_report(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN_MARK in text and END_MARK in text:
        head, _, rest = text.partition(BEGIN_MARK)
        _, _, tail = rest.partition(END_MARK)
        path.write_text(head + section.rstrip("\n") + tail)
    else:
        path.write_text(text.rstrip("\n") + "\n\n" + section)


def _git(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    return ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, a few seconds")
    parser.add_argument("--output", type=Path, help="report file (default: BENCHMARKS.md, or results/ when --quick)")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    data = asyncio.run(measure(plan))
    command = ".venv/bin/python -m benchmarks.run_auth" + (" --quick" if args.quick else "")
    output = args.output or (RESULTS_DIR / "BENCHMARKS-auth-quick.md" if args.quick else ROOT / "BENCHMARKS.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_report(output, render(data, command))
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    print(render(data, command))


if __name__ == "__main__":
    main()
