"""What pricing costs the session path: short 1.6 sessions against the real server without and with tariffs.

    .venv/bin/python -m benchmarks.run_money            # 50 stations x 40 sessions per mode, 3 rounds; rewrites
                                                        # its section of BENCHMARKS.md (--repeat N: N rounds)
    .venv/bin/python -m benchmarks.run_money --quick    # 5 x 5, writes benchmarks/results/BENCHMARKS-money-quick.md

Each mode starts the CSMS in this process (SQLite file, loopback websockets) and has every station run its sessions
back to back (StartTransaction, one MeterValues, StopTransaction), all stations at once. *Baseline*: no tariff and
no session rules (the money side follows nothing). *Priced*: a default tariff with a demand tier and a time-of-use
tier, and session rules with a time limit, so every session is priced at start, timed, and costed at its end;
*priced, one at a time*: the same with the session-rules loop handling one report per read and commit (how it
worked before batching). Reported: sessions per second until the last StopTransaction was answered (the ratio to
the baseline of the same run is what to read: the machine is shared), how long after that the last cost breakdown
was stored (cost lag), and sessions per second counted until then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection, connect

from csms.config import load_settings
from csms.runtime.app import CentralSystem
from csms.service.session_rules import DEFAULT_BATCH
from csms.storage.tables_tariffs import tariff_sessions

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
BEGIN_MARK = "<!-- money:begin -->"
END_MARK = "<!-- money:end -->"
TOKEN = "bench-admin-token-0123456789abcdef"

TARIFF = {
    "currency": "EUR",
    "time_zone": "Europe/Berlin",
    "prices": {"energy_per_kwh": "0.30", "time_per_hour": "1.20", "session_fee": "0.50"},
    "overstay": {"per_minute": "0.25", "cap": "10", "grace_minutes": 10},
    "tiers": [
        {"name": "busy", "min_utilisation": 0.5, "multiplier": "1.5"},
        {"name": "peak", "window": {"start": "17:00", "end": "20:00"}, "multiplier": "1.2"},
    ],
}
RULES = {"max_charging_minutes": 240, "warning_minutes": 10, "at_limit": "stop"}


@dataclass(frozen=True, slots=True)
class Plan:
    stations: int
    sessions: int  # per station


FULL = Plan(stations=50, sessions=40)
QUICK = Plan(stations=5, sessions=5)


@dataclass(frozen=True, slots=True)
class ModeResult:
    mode: str
    sessions: int
    seconds: float
    sessions_per_s: float
    costs_stored: int
    cost_lag_s: float  # after the last StopTransaction answer, until every breakdown was stored
    batches: int = 0  # batches the session-rules loop committed


class _Station:
    """A minimal raw 1.6 charger: one CALL at a time, answers whatever the CSMS asks with Accepted."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        message_id = str(next(self._ids))
        await self._connection.send(json.dumps([2, message_id, action, payload]))
        while True:
            frame = json.loads(await self._connection.recv())
            if frame[0] == 2:  # a CALL from the CSMS (profiles, configuration): accept it
                await self._connection.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
            elif frame[1] == message_id:
                if frame[0] != 3:
                    raise RuntimeError(f"{action} answered {frame}")
                result: dict[str, Any] = frame[2]
                return result


def _ts() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _sessions(url: str, identity: str, count: int) -> None:
    async with connect(f"{url}/{identity}", subprotocols=["ocpp1.6"]) as connection:  # type: ignore[list-item]
        station = _Station(connection)
        await station.call("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "M"})
        meter = 0
        for _ in range(count):
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": _ts()}
            await station.call("StatusNotification", status)
            start = {"connectorId": 1, "idTag": "TAG", "meterStart": meter, "timestamp": _ts()}
            transaction_id = (await station.call("StartTransaction", start))["transactionId"]
            meter += 5000
            sample = [{"value": str(meter), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
            values = {
                "connectorId": 1,
                "transactionId": transaction_id,
                "meterValue": [{"timestamp": _ts(), "sampledValue": sample}],
            }
            await station.call("MeterValues", values)
            stop = {"transactionId": transaction_id, "meterStop": meter, "timestamp": _ts()}
            await station.call("StopTransaction", stop)


async def _stored_costs(system: CentralSystem) -> int:
    async with system.engine.connect() as conn:
        # Sessions not followed (no tariff, no rules) have a closed row without a total: not a cost.
        query = select(func.count()).select_from(tariff_sessions).where(tariff_sessions.c.total.is_not(None))
        return int((await conn.execute(query)).scalar_one())


async def run_mode(plan: Plan, priced: bool, database: Path, batch: int = DEFAULT_BATCH) -> ModeResult:
    settings = load_settings(
        None,
        ocpp={"host": "127.0.0.1", "port": 0},
        api={"host": "127.0.0.1", "port": 0, "admin_token": TOKEN},
        database={"url": f"sqlite+aiosqlite:///{database}"},
        stations={"auto_register": True, "allow_unknown_tokens": True},
        smart_charging={"enabled": False, "tx_default_at_boot": False},
        log={"level": "warning"},
    )
    system = CentralSystem(settings)
    await system.start()
    assert system.session_rules is not None
    system.session_rules.batch_size = batch
    try:
        names = [f"MB-{index:04d}" for index in range(plan.stations)]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{system.api_port}/api/v1", headers=headers) as api:
            (await api.post("/grid-nodes", json={"id": "site", "max_current_a": 10_000})).raise_for_status()
            for name in names:
                (await api.put(f"/stations/{name}/wiring", json={"node_id": "site"})).raise_for_status()
            if priced:
                (await api.put("/tariffs/default", json=TARIFF)).raise_for_status()
                (await api.put("/sites/site/session-rules", json=RULES)).raise_for_status()
        url = f"ws://127.0.0.1:{system.ocpp_port}/ocpp"
        began = time.perf_counter()
        await asyncio.gather(*(_sessions(url, name, plan.sessions) for name in names))
        seconds = time.perf_counter() - began
        assert system.session_rules_loop is not None
        await asyncio.wait_for(system.session_rules_loop.settled(), timeout=600)
        lag = time.perf_counter() - began - seconds
        stored = await _stored_costs(system)
        batches = system.session_rules.batches
    finally:
        await system.stop()
    total = plan.stations * plan.sessions
    mode = ("priced" if batch > 1 else "priced, one at a time") if priced else "baseline"
    return ModeResult(mode, total, seconds, total / seconds, stored, lag, batches)


def _git(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    return ""


def _until_costed(result: ModeResult) -> float:
    """Sessions per second counted until the last cost was stored: work deferred past the last stop counts too."""
    return result.sessions / (result.seconds + result.cost_lag_s)


def render(plan: Plan, results: list[ModeResult], command: str, repeat: int = 1) -> str:
    baseline = next(r for r in results if r.mode == "baseline")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN_MARK,
        "## Pricing",
        "",
        f"Generated by `{command}` on {when} at `{_git('rev-parse', '--short', 'HEAD')}` "
        f"({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}); edit outside the markers.",
        "",
        f"{plan.stations} raw OCPP 1.6 stations, each running {plan.sessions} sessions back to back (Status, Start, "
        "one MeterValues, Stop), all at once against the CSMS in this process (SQLite, smart charging off). "
        "*baseline*: no tariff, no session rules; *priced*: a default tariff with two tiers and a time limit, so "
        "every session is priced at its start, timed and costed at its end, by the session-rules loop in batches "
        f"(up to {DEFAULT_BATCH} reports: one read and one commit per batch); *priced, one at a time*: the same "
        "with batches of one report (one read and one commit each, as before batching). "
        "Cost lag: from the last StopTransaction answer until every breakdown was stored. *sessions/s until "
        "costed* counts the lag too (work the loop defers past the last stop is still work). Medians of "
        f"{repeat} interleaved round(s), the baseline run before and after the priced modes in each.",
        "",
        "| mode | sessions | time | sessions/s | vs baseline | costs stored | cost lag | sessions/s until costed "
        "| vs baseline | loop batches |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.mode} | {r.sessions} | {r.seconds:.2f} s | {r.sessions_per_s:.0f} | "
            f"{r.sessions_per_s / baseline.sessions_per_s:.2f} | {r.costs_stored} | {r.cost_lag_s * 1000:.0f} ms | "
            f"{_until_costed(r):.0f} | {_until_costed(r) / _until_costed(baseline):.2f} | "
            f"{r.batches if r.mode != 'baseline' else ''} |"
        )
    single = next((r for r in results if r.mode == "priced, one at a time"), None)
    priced = next((r for r in results if r.mode == "priced"), None)
    lines.append("")
    if single is not None and priced is not None:
        lines += [
            f"- sessions/s with tariffs and rules vs without: "
            f"**{priced.sessions_per_s / baseline.sessions_per_s:.2f}** "
            f"(batched), {single.sessions_per_s / baseline.sessions_per_s:.2f} (one at a time)",
            f"- cost lag after the last stop: **{single.cost_lag_s * 1000:.0f} ms one at a time, "
            f"{priced.cost_lag_s * 1000:.0f} ms batched** "
            f"({single.cost_lag_s / max(priced.cost_lag_s, 1e-6):.0f}x shorter)",
            "- one at a time is faster on the session path only because its loop falls behind and does the costing "
            "after the last stop; counted until the last cost is stored it is the slowest (*sessions/s until costed*)",
        ]
    lines += [f"- load average at the start: {' / '.join(f'{v:.2f}' for v in os.getloadavg())} (1 / 5 / 15 min)"]
    lines.append(END_MARK)
    return "\n".join(lines) + "\n"


def write_report(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN_MARK in text and END_MARK in text:
        head, _, rest = text.partition(BEGIN_MARK)
        _, _, tail = rest.partition(END_MARK)
        path.write_text(head + section.rstrip("\n") + tail)
    else:
        path.write_text(text.rstrip("\n") + "\n\n" + section)


def _median(results: list[ModeResult], mode: str) -> ModeResult:
    """The round with the median session time; its cost lag is the median lag of the rounds."""
    ordered = sorted(results, key=lambda r: r.seconds)
    middle = ordered[len(ordered) // 2]
    lag = statistics.median(r.cost_lag_s for r in results)
    return ModeResult(
        mode, middle.sessions, middle.seconds, middle.sessions_per_s, middle.costs_stored, lag, middle.batches
    )


async def run(plan: Plan, repeat: int = 1) -> list[ModeResult]:
    """``repeat`` interleaved rounds of: baseline, priced one at a time, priced (batched), baseline again.

    "One at a time" is the session-rules loop with batches of 1: one read and one commit per report, the way
    costs were processed before batching; "priced" is the same run with batches (the default). The baseline
    brackets the priced runs in each round (the machine is shared); medians over the rounds are reported.
    """
    rounds: dict[str, list[ModeResult]] = {"baseline": [], "priced, one at a time": [], "priced": []}
    with tempfile.TemporaryDirectory(prefix="csms-money-") as workdir:
        for index in range(repeat):
            base = Path(workdir) / f"round-{index}"
            rounds["baseline"].append(await run_mode(plan, False, base.with_suffix(".baseline-1.db")))
            rounds["priced, one at a time"].append(await run_mode(plan, True, base.with_suffix(".single.db"), 1))
            rounds["priced"].append(await run_mode(plan, True, base.with_suffix(".priced.db")))
            rounds["baseline"].append(await run_mode(plan, False, base.with_suffix(".baseline-2.db")))
    return [_median(results, mode) for mode, results in rounds.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 stations x 5 sessions")
    parser.add_argument("--output", type=Path, default=None, help="report file (default: see above)")
    parser.add_argument("--repeat", type=int, default=None, help="interleaved rounds (default 3, quick 1)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output = args.output or (RESULTS_DIR / "BENCHMARKS-money-quick.md" if args.quick else ROOT / "BENCHMARKS.md")
    repeat = args.repeat or (1 if args.quick else 3)
    results = asyncio.run(run(plan, repeat))
    command = " ".join([".venv/bin/python -m benchmarks.run_money", *(argv if argv is not None else sys.argv[1:])])
    write_report(output, render(plan, results, command, repeat))
    print(json.dumps([asdict(r) for r in results], indent=2))
    return 0 if all(r.costs_stored == r.sessions for r in results if r.mode != "baseline") else 1


if __name__ == "__main__":
    sys.exit(main())
