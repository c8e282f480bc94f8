"""Reaction to a limit cut, end to end: from the API call until the simulated fleet's real load is under it.

``python -m benchmarks.run_reaction``          1,000 stations, a few minutes; rewrites the "Reaction" section of
                                               BENCHMARKS.md
``python -m benchmarks.run_reaction --quick``  100 stations, well under a minute; writes its report to
                                               benchmarks/results/BENCHMARKS-reaction-quick.md unless --output

The CSMS runs as its own process (``python -m csms serve`` with a temporary config and SQLite database) on
loopback ports; the fleet runs in this process: one simulated station per EVSE (half OCPP 1.6, half 2.0.1), each
with a three-phase 16 A car charging, all under one site split into feeders. Simulated time runs at real speed.

Each round: the site limit is set to 75 % of what the cars could draw and the fleet settles there; then the limit
is cut to half of that through ``PATCH /api/v1/grid-nodes/site``. The reaction is the time from just before the
request is sent until the fleet's measured load (the simulator's ground truth, every station's draw at every
instant) is under the new limit on every phase and stays there. Rounds run without and with an apply latency
(every station takes a new profile into effect that much later, at its next one-second physics tick); the target
is under 5 s plus that latency. The server keeps its default settings (1 s debounce included) except a 5 s
minimum between increases, so that the fleet climbs back between rounds within seconds, not minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import ocpp.messages

from benchmarks._common import raise_fd_limit
from simulator import Behaviour, EVSpec, EVState, SimClock, SimStation
from simulator.model import Protocol
from simulator.site import SiteMeter, StationWiring

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
BEGIN_MARK = "<!-- reaction:begin -->"
END_MARK = "<!-- reaction:end -->"

CAR = EVSpec(name="3ph-16A", capacity_kwh=77.0, max_current_a=16.0, phases=3)
START_LIMIT_SHARE = 0.75  # of what every car together could draw
CUT_SHARE = 0.5  # the cut: half of the limit before it
TARGET_S = 5.0  # the target, plus the apply latency
TICK_S = 1.0  # physics step of each simulated station
METER_S = 60  # between meter values


@dataclass(frozen=True)
class Plan:
    stations: int
    feeders: int
    rounds: int
    latencies: tuple[float, ...]
    hold_s: float = 3.0  # "stays under": watched this long (plus the apply latency) after the load got under
    min_write_s: float = 5.0  # the server's minimum between increases to one EVSE (default 300 s)
    timeout_s: float = 60.0  # a round that has not reacted by then counts as failed (inf)


FULL = Plan(stations=1000, feeders=10, rounds=3, latencies=(0.0, 5.0))
QUICK = Plan(stations=100, feeders=4, rounds=1, latencies=(0.0, 2.0), hold_s=1.5, min_write_s=2.0)


@dataclass
class Round:
    latency_s: float
    limit_before_a: float
    limit_after_a: float
    load_before_a: float  # highest phase, just before the cut
    api_s: float  # the PATCH request's round trip
    first_told_s: float  # first and last station given a new limit, after the call
    last_told_s: float
    told: int  # stations given a new limit within the round
    reaction_s: float  # under the new limit on every phase, and stays there
    load_after_a: float  # highest phase at the end of the round
    under_at_end: bool


@dataclass
class Setup:
    server_start_s: float = 0.0
    wiring_s: float = 0.0
    connect_s: float = 0.0
    sessions_s: float = 0.0
    settle_s: float = 0.0


@dataclass
class Result:
    plan: Plan
    setup: Setup = field(default_factory=Setup)
    rounds: list[Round] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- the server ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


ADMIN_TOKEN = "reaction-admin-token-0123456789"


class Server:
    """``python -m csms serve`` with a temporary config, database and log; stopped with SIGINT."""

    def __init__(self, workdir: Path, min_write_s: float) -> None:
        self.ocpp_port, self.api_port = free_port(), free_port()
        self.config = workdir / "csms.toml"
        self.config.write_text(
            "\n".join(
                [
                    "[ocpp]",
                    'host = "127.0.0.1"',
                    f"port = {self.ocpp_port}",
                    "heartbeat_interval = 3600",
                    "[api]",
                    'host = "127.0.0.1"',
                    f"port = {self.api_port}",
                    f'admin_token = "{ADMIN_TOKEN}"',
                    "[database]",
                    f'url = "sqlite+aiosqlite:///{workdir / "reaction.db"}"',
                    "[stations]",
                    "auto_register = true",
                    "allow_unknown_tokens = true",
                    "[smart_charging]",
                    f"min_write_interval_seconds = {min_write_s:g}",
                    "[log]",
                    'level = "warning"',
                    "",
                ]
            )
        )
        self.log_path = workdir / "server.log"
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 60.0) -> float:
        began = time.monotonic()
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
        async with httpx.AsyncClient(timeout=1.0) as http:
            while time.monotonic() - began < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"csms exited during start-up:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{self.api_port}/healthz")).status_code == 200:
                        return time.monotonic() - began
                await asyncio.sleep(0.2)
        raise RuntimeError(f"csms not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()


# -- the fleet -----------------------------------------------------------------------------------------------------


class Fleet:
    """One simulated single-EVSE station per car, their ground-truth meter, and what each was told when."""

    def __init__(self, plan: Plan, url: str, clock: SimClock) -> None:
        self.clock = clock
        self.feeders = [f"feeder-{f + 1}" for f in range(plan.feeders)]
        self.stations: list[SimStation] = []
        self.wirings: dict[str, str] = {}
        self.told: dict[str, list[datetime]] = {}
        parents: dict[str, str | None] = {"site": None} | {feeder: "site" for feeder in self.feeders}
        for i in range(plan.stations):
            identity = f"RX-{i + 1:04d}"
            protocol = Protocol.V201 if i % 2 else Protocol.V16
            interval = "SampledDataCtrlr.TxUpdatedInterval" if i % 2 else "MeterValueSampleInterval"
            station = SimStation(
                identity,
                url,
                protocol,
                1,
                clock,
                rng=random.Random(identity),
                max_current_a=32.0,
                config={interval: str(METER_S)},
                tick_s=TICK_S,
                response_timeout=30.0,
                backoff_s=(0.2, 2.0),
                validate_messages=False,  # the CSMS validates them; its profiles are still checked here
            )
            self.stations.append(station)
            self.wirings[identity] = self.feeders[i % plan.feeders] if self.feeders else "site"
            told = self.told.setdefault(identity, [])
            station.core.profiles.install_listeners.append(lambda profile, told=told: told.append(profile.installed_at))
        self.meter = SiteMeter(parents, {sid: StationWiring(node) for sid, node in self.wirings.items()})
        for station in self.stations:
            self.meter.attach(station)

    def site_load(self) -> float:
        return max(self.meter.load("site"))

    def set_latency(self, seconds: float) -> None:
        for station in self.stations:
            station.core.behaviour = Behaviour(profile_delay_s=seconds)

    async def start(self) -> None:
        for station in self.stations:
            await station.start()
            await asyncio.sleep(0.002)  # a gentle ramp, not one burst of handshakes
        await asyncio.gather(*(station.wait_connected(120) for station in self.stations))

    async def plug_in_all(self) -> None:
        limit = asyncio.Semaphore(50)

        async def car(station: SimStation) -> None:
            async with limit:
                await station.plug_in(1, EVState(CAR, 0.2, target_soc=0.95))
                if not await station.present_tag(1, f"TAG-{station.identity}"):
                    raise RuntimeError(f"{station.identity}: the car's tag was not accepted")

        await asyncio.gather(*(car(station) for station in self.stations))

    async def stop(self) -> None:
        await asyncio.gather(*(station.stop() for station in self.stations))


async def wait_until(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> float:
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(step)
    return time.monotonic() - began


async def settle(fleet: Fleet, level: float, timeout: float) -> float:
    """Wait until the site draws at least ``level`` and has not changed for two seconds."""
    began = time.monotonic()
    last, since = fleet.site_load(), time.monotonic()
    while True:
        load = fleet.site_load()
        if load != last:
            last, since = load, time.monotonic()
        if load >= level and time.monotonic() - since >= 2.0:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            draws = Counter(
                (c.current_a, c.offered_a, c.session is not None)
                for s in fleet.stations
                for c in s.core.connectors.values()
            )
            raise RuntimeError(
                f"the site did not settle at {level:.0f} A within {timeout:.0f} s (at {load:.0f} A); "
                f"(drawn A, offered A, in a session): stations {sorted(draws.items())}"
            )
        await asyncio.sleep(0.1)


def reaction_after(fleet: Fleet, cut: datetime, limit: float, until: datetime) -> float:
    """Seconds from ``cut`` until the site load is under ``limit`` on every phase for good (inf if never)."""
    under_since: datetime | None = None
    for step in fleet.meter.steps("site", cut, until):
        if max(step.load_a) <= limit + 1e-6:
            under_since = under_since or step.start
        else:
            under_since = None
    return (under_since - cut).total_seconds() if under_since is not None else float("inf")


# -- one run -------------------------------------------------------------------------------------------------------


async def run(plan: Plan, workdir: Path, progress: Callable[[str], None]) -> Result:
    result = Result(plan)
    result.notes.append(
        f"load average at the start: {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (1 / 5 / 15 min)"
    )
    server = Server(workdir, plan.min_write_s)
    result.setup.server_start_s = await server.start()
    progress(f"server ready on ports {server.ocpp_port}/{server.api_port} in {result.setup.server_start_s:.1f} s")
    clock = SimClock(1.0)
    fleet = Fleet(plan, f"ws://127.0.0.1:{server.ocpp_port}/ocpp", clock)
    full = plan.stations * CAR.max_current_a
    start_limit = round(full * START_LIMIT_SHARE)
    cut_limit = round(start_limit * CUT_SHARE)
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.api_port}/api/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    try:
        began = time.monotonic()
        await call(api, "POST", "/grid-nodes", {"id": "site", "max_current_a": start_limit})
        for feeder in fleet.feeders:  # a feeder's cars could never overload it: only the site limit binds
            limit = full / len(fleet.feeders) * 1.1
            await call(api, "POST", "/grid-nodes", {"id": feeder, "parent_id": "site", "max_current_a": limit})
        await gather_limited(
            [
                call(api, "PUT", f"/stations/{sid}/wiring", {"node_id": node, "max_current_a": 32.0})
                for sid, node in fleet.wirings.items()
            ],
            20,
        )
        result.setup.wiring_s = time.monotonic() - began
        progress(f"site, {len(fleet.feeders)} feeders and {plan.stations} wirings in {result.setup.wiring_s:.1f} s")
        began = time.monotonic()
        await fleet.start()
        result.setup.connect_s = time.monotonic() - began
        progress(f"{plan.stations} stations connected in {result.setup.connect_s:.1f} s")
        began = time.monotonic()
        await fleet.plug_in_all()
        result.setup.sessions_s = time.monotonic() - began
        progress(f"{plan.stations} cars charging in {result.setup.sessions_s:.1f} s")
        result.setup.settle_s = await settle(fleet, start_limit * 0.95, plan.timeout_s * 3)
        progress(f"site settled at {fleet.site_load():.0f} A of {start_limit} A in {result.setup.settle_s:.1f} s")

        for latency in plan.latencies:
            fleet.set_latency(latency)
            for number in range(plan.rounds):
                if result.rounds:  # give the room back and let the fleet climb to it again
                    await call(api, "PATCH", "/grid-nodes/site", {"max_current_a": start_limit})
                    await settle(fleet, start_limit * 0.95, plan.timeout_s)
                measured = await cut_once(fleet, api, start_limit, cut_limit, latency, plan)
                result.rounds.append(measured)
                progress(
                    f"latency {latency:g} s, round {number + 1}: under {cut_limit} A after "
                    f"{measured.reaction_s:.2f} s (last limit sent {measured.last_told_s:.2f} s, "
                    f"{measured.told} stations told)"
                )
    finally:
        await api.aclose()
        await fleet.stop()
        server.stop()
    problems = [f"{s.identity}: {e}" for s in fleet.stations for e in s.errors]
    if problems:
        result.notes.append(f"simulator problems: {len(problems)}, first: {problems[0]}")
    return result


async def cut_once(
    fleet: Fleet, api: httpx.AsyncClient, before: float, after: float, latency: float, plan: Plan
) -> Round:
    load_before = fleet.site_load()
    told_before = {sid: len(told) for sid, told in fleet.told.items()}
    cut = fleet.clock.now()
    sent = time.monotonic()
    await call(api, "PATCH", "/grid-nodes/site", {"max_current_a": after})
    api_s = time.monotonic() - sent
    with contextlib.suppress(RuntimeError):
        await wait_until(lambda: fleet.site_load() <= after, plan.timeout_s, "the fleet to get under the new limit")
    await asyncio.sleep(plan.hold_s + latency + TICK_S)  # late appliers and anyone still moving show up here
    end = fleet.clock.now()
    told = [t for sid, times in fleet.told.items() for t in times[told_before[sid] :] if t >= cut]
    offsets = sorted((t - cut).total_seconds() for t in told)
    return Round(
        latency_s=latency,
        limit_before_a=before,
        limit_after_a=after,
        load_before_a=load_before,
        api_s=api_s,
        first_told_s=offsets[0] if offsets else float("inf"),
        last_told_s=offsets[-1] if offsets else float("inf"),
        told=len({sid for sid, times in fleet.told.items() if len(times) > told_before[sid]}),
        reaction_s=reaction_after(fleet, cut, after, end),
        load_after_a=fleet.site_load(),
        under_at_end=fleet.site_load() <= after + 1e-6,
    )


async def call(api: httpx.AsyncClient, method: str, path: str, body: dict[str, Any]) -> None:
    response = await api.request(method, path, json=body)
    if response.status_code not in (200, 201):
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")


async def gather_limited(calls: Sequence[Awaitable[None]], limit: int) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(awaitable: Awaitable[None]) -> None:
        async with semaphore:
            await awaitable

    await asyncio.gather(*(one(c) for c in calls))


# -- report --------------------------------------------------------------------------------------------------------


def summary(result: Result) -> list[dict[str, Any]]:
    """Per apply latency: median and max reaction, and whether every round met the target."""
    rows = []
    for latency in result.plan.latencies:
        rounds = [r for r in result.rounds if r.latency_s == latency]
        reactions = [r.reaction_s for r in rounds]
        rows.append(
            {
                "latency_s": latency,
                "rounds": len(rounds),
                "reaction_median_s": statistics.median(reactions) if reactions else float("inf"),
                "reaction_max_s": max(reactions, default=float("inf")),
                "first_told_median_s": statistics.median([r.first_told_s for r in rounds]) if rounds else float("inf"),
                "last_told_median_s": statistics.median([r.last_told_s for r in rounds]) if rounds else float("inf"),
                "api_median_s": statistics.median([r.api_s for r in rounds]) if rounds else float("inf"),
                "target_s": TARGET_S + latency,
                "met": bool(rounds) and all(r.reaction_s < TARGET_S + latency and r.under_at_end for r in rounds),
            }
        )
    return rows


def render(result: Result, command: str) -> str:
    plan, setup = result.plan, result.setup
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    commit = _git("rev-parse", "--short", "HEAD") or "?"
    lines = [
        BEGIN_MARK,
        "## Reaction to a limit cut (end to end)",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at `{commit}` ({machine}); edit outside "
        "the markers.",
        "",
        f"{plan.stations} simulated stations (half OCPP 1.6, half 2.0.1), one three-phase 16 A car charging on each, "
        f"under one site with {plan.feeders} feeders; the CSMS (`python -m csms serve`, SQLite, default smart-charging "
        f"settings but a {plan.min_write_s:g} s minimum between increases) in its own process, the fleet in another, "
        "loopback websockets, "
        f"simulated time at real speed. The site limit starts at {START_LIMIT_SHARE:.0%} of what the cars could draw "
        f"and is cut to {CUT_SHARE:.0%} of that with `PATCH /api/v1/grid-nodes/site`. Reaction: from just before "
        "the request until the fleet's measured load (the simulator's ground truth) is under the new limit on every "
        f"phase and stays there ({plan.hold_s:g} s and the apply latency were watched after). Target: under "
        f"{TARGET_S:g} s plus the apply latency.",
        "",
        "| apply latency | rounds | reaction median | reaction max | first / last limit received (median) | API call "
        "| target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary(result):
        lines.append(
            f"| {row['latency_s']:g} s | {row['rounds']} | {row['reaction_median_s']:.2f} s | "
            f"{row['reaction_max_s']:.2f} s | {row['first_told_median_s']:.2f} / {row['last_told_median_s']:.2f} s | "
            f"{row['api_median_s'] * 1000:.0f} ms | "
            f"< {row['target_s']:g} s | {'yes' if row['met'] else '**no**'} |"
        )
    lines += [
        "",
        "Where the time goes: the server waits its debounce (1 s) before re-planning, then sends every station its "
        "lower limit at once; *first / last limit received* is when the first and the last station had it, as seen "
        "by the simulator. A real "
        "fleet applies limits on a thousand CPUs; here one process handles every station's SetChargingProfile in "
        "turn, so that column includes the simulator's own queue. With an apply latency each station then waits "
        "that long, and up to one physics tick (1 s), before it draws less.",
        "",
        f"Setup: server start {setup.server_start_s:.1f} s, site and wirings {setup.wiring_s:.1f} s, "
        f"{plan.stations} stations connected {setup.connect_s:.1f} s, cars charging {setup.sessions_s:.1f} s, "
        f"site settled {setup.settle_s:.1f} s.",
        *(["", *(f"- {note}" for note in result.notes)] if result.notes else []),
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 stations, one round per latency")
    parser.add_argument("--stations", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None, help="report file (default: see above)")
    parser.add_argument("--json", type=Path, default=None, help="raw results (default: benchmarks/results/)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.stations is not None:
        plan = replace(plan, stations=args.stations, feeders=min(plan.feeders, args.stations))
    if args.rounds is not None:
        plan = replace(plan, rounds=args.rounds)
    raise_fd_limit()
    ocpp.messages.ASYNC_VALIDATION = False  # as the simulator's CLI does: validation in a thread costs more
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output = args.output or (RESULTS_DIR / "BENCHMARKS-reaction-quick.md" if args.quick else ROOT / "BENCHMARKS.md")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = args.json or RESULTS_DIR / f"reaction-{stamp}{'-quick' if args.quick else ''}.json"
    began = time.monotonic()

    def progress(message: str) -> None:
        print(f"[run_reaction {time.monotonic() - began:6.1f} s] {message}", flush=True)

    with tempfile.TemporaryDirectory(prefix="csms-reaction-") as workdir:
        result = asyncio.run(run(plan, Path(workdir), progress))
    command = " ".join([".venv/bin/python -m benchmarks.run_reaction", *(argv if argv is not None else sys.argv[1:])])
    write_report(output, render(result, command))
    data = {"plan": asdict(plan), "setup": asdict(result.setup), "rounds": [asdict(r) for r in result.rounds]}
    data |= {"summary": summary(result), "notes": result.notes, "total_seconds": time.monotonic() - began}
    json_path.write_text(json.dumps(data, indent=2))
    progress(f"wrote {output} and {json_path}")
    measured = bool(result.rounds) and all(r.reaction_s < float("inf") and r.under_at_end for r in result.rounds)
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())
