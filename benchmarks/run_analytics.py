"""Analytics at scale: the reports' queries over 10,000 sessions and 100,000 meter values in SQLite.

``python -m benchmarks.run_analytics``          10k sessions / 100k meter values / 40k status changes; rewrites its
                                                BENCHMARKS.md section
``python -m benchmarks.run_analytics --quick``  500 sessions, seconds; writes
                                                benchmarks/results/BENCHMARKS-analytics-quick.md unless --output

Each report runs as the API runs it (``AnalyticsReader`` query + the pure aggregation of ``csms.domain.analytics``)
and is timed against baselines measured in the same run on the same database: the naive load report (read every
energy reading into Python, then difference and bucket there) and a plain read of every meter value row. The
naive report's buckets must equal ours, or the run fails. The machine is shared: ratios, not absolute times, are
what to compare between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.domain.analytics import (
    ConnectorUtilisation,
    EnergyBucket,
    charging_patterns,
    load_report,
    user_behaviour,
    utilisation,
    utilisation_from_times,
)
from csms.storage.availability import AnalyticsReader
from csms.storage.engine import create_engine as create_async_engine, migrate
from csms.storage.tables import meter_values, stations, transactions
from csms.storage.tables_availability import connector_status_history

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
BEGIN, END = "<!-- live:begin -->", "<!-- live:end -->"
START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30
READINGS = 10  # energy register readings per session, one every 6 minutes
BUCKET = timedelta(minutes=15)


@dataclass(frozen=True)
class Plan:
    sessions: int
    stations: int
    repeats: int


FULL = Plan(sessions=10_000, stations=100, repeats=5)
QUICK = Plan(sessions=500, stations=10, repeats=1)


def populate(url: str, plan: Plan) -> dict[str, int]:
    """Stations, sessions of an hour at 11 kW spread over 30 days, their readings and status changes."""
    rng = random.Random(5)
    engine = create_engine(url.replace("+aiosqlite", ""))
    ids = [f"cp{n:04d}" for n in range(plan.stations)]
    tx_rows: list[dict[str, Any]] = []
    mv_rows: list[dict[str, Any]] = []
    status_rows: list[dict[str, Any]] = []
    for n in range(1, plan.sessions + 1):
        station = ids[n % plan.stations]
        started = START + timedelta(seconds=rng.randrange(DAYS * 86400 - 7200))
        stopped = started + timedelta(minutes=6 * READINGS)
        tx_rows.append(
            {
                "id": n,
                "station_id": station,
                "evse_id": 1,
                "connector_id": 1,
                "charger_tx_id": str(n),
                "id_token": f"tok{rng.randrange(500)}",
                "state": "Ended",
                "started_at": started,
                "meter_start_wh": 0.0,
                "stopped_at": stopped,
                "meter_stop_wh": 1100.0 * READINGS,
                "offline": False,
            }
        )
        for k in range(1, READINGS + 1):
            mv_rows.append(
                {
                    "station_id": station,
                    "evse_id": 1,
                    "transaction_id": n,
                    "timestamp": started + timedelta(minutes=6 * k),
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh",
                    "context": "Sample.Periodic",
                    "value": 1100.0 * k,
                }
            )
        for offset, status in (
            (0, "Preparing"),
            (1, "Charging"),
            (6 * READINGS, "Finishing"),
            (6 * READINGS + 5, "Available"),
        ):
            at = started + timedelta(minutes=offset)
            status_rows.append(
                {"station_id": station, "evse_id": 1, "connector_id": 1, "status": status, "at": at, "received_at": at}
            )
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(stations), [{"id": s, "registration": "Accepted", "created_at": now} for s in ids])
        conn.execute(insert(transactions), tx_rows)
        conn.execute(insert(meter_values), mv_rows)
        conn.execute(insert(connector_status_history), status_rows)
    engine.dispose()
    return {"sessions": len(tx_rows), "meter_values": len(mv_rows), "status_changes": len(status_rows)}


async def naive_buckets(
    engine: AsyncEngine, station_ids: list[str], start: datetime, end: datetime
) -> dict[datetime, float]:
    """The baseline: every reading into Python, differenced per transaction and bucketed there."""
    query = (
        select(
            meter_values.c.transaction_id, meter_values.c.timestamp, meter_values.c.value, transactions.c.meter_start_wh
        )
        .select_from(meter_values.join(transactions, transactions.c.id == meter_values.c.transaction_id))
        .where(
            transactions.c.station_id.in_(station_ids),
            meter_values.c.measurand == "Energy.Active.Import.Register",
            meter_values.c.timestamp < end,
        )
        .order_by(meter_values.c.transaction_id, meter_values.c.timestamp, meter_values.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    previous: dict[int, float] = {}
    buckets: dict[datetime, float] = defaultdict(float)
    bucket_s = int(BUCKET.total_seconds())
    for transaction_id, timestamp, value, meter_start in rows:
        before = previous.get(transaction_id, meter_start)
        previous[transaction_id] = value
        if timestamp < start or value - before <= 0:
            continue
        index = (int(timestamp.timestamp()) - int(start.timestamp()) - 1) // bucket_s
        buckets[start + timedelta(seconds=index * bucket_s)] += value - before
    return dict(buckets)


async def read_all(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return len((await conn.execute(select(meter_values))).all())


async def timed(repeats: int, work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = await work()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


async def measure(url: str, plan: Plan) -> dict[str, Any]:
    engine = create_async_engine(url, "normal")
    await migrate(engine)
    counts = await asyncio.to_thread(populate, url, plan)
    reader = AnalyticsReader(engine)
    station_ids = [f"cp{n:04d}" for n in range(plan.stations)]
    start, end = START, START + timedelta(days=DAYS)

    async def ours_load() -> list[EnergyBucket]:
        buckets = await reader.energy_buckets(station_ids, start, end, BUCKET)
        load_report(buckets, start, end, BUCKET, 100_000.0)
        return buckets

    async def ours_patterns() -> None:
        charging_patterns(await reader.sessions(station_ids, start, end), UTC)

    async def ours_users() -> None:
        user_behaviour(await reader.sessions(station_ids, start, end))

    async def ours_utilisation() -> list[ConnectorUtilisation]:
        return utilisation_from_times(await reader.status_time(station_ids, start, end), start, end)

    async def python_utilisation() -> list[ConnectorUtilisation]:
        return utilisation(await reader.status_history(station_ids, start, end), start, end)

    results: dict[str, float] = {}
    results["read_all"], rows = await timed(plan.repeats, lambda: read_all(engine))
    results["naive_load"], naive = await timed(plan.repeats, lambda: naive_buckets(engine, station_ids, start, end))
    results["load"], ours = await timed(plan.repeats, ours_load)
    results["patterns"], _ = await timed(plan.repeats, ours_patterns)
    results["users"], _ = await timed(plan.repeats, ours_users)
    results["utilisation"], in_sql = await timed(plan.repeats, ours_utilisation)
    results["python_utilisation"], in_python = await timed(plan.repeats, python_utilisation)
    await engine.dispose()
    ours_map = {b.start: round(b.energy_wh, 6) for b in ours}
    agree = ours_map == {k: round(v, 6) for k, v in naive.items()}
    agree = agree and [c.seconds for c in in_sql] == [c.seconds for c in in_python]
    return {"counts": counts, "rows_read": rows, "seconds": results, "agree": agree, "buckets": len(ours_map)}


def render(plan: Plan, result: dict[str, Any], command: str) -> str:
    s = result["seconds"]
    c = result["counts"]
    commit = _git("rev-parse", "--short", "HEAD")
    rows = [
        ("load (peak vs limit, 15-min buckets)", s["load"]),
        ("patterns (by hour/weekday, dwell, energy)", s["patterns"]),
        ("users (per account)", s["users"]),
        ("utilisation (status history, summed in SQL)", s["utilisation"]),
        ("utilisation with every transition read into Python", s["python_utilisation"]),
        ("baseline: naive load report in Python", s["naive_load"]),
        ("baseline: read every meter value row", s["read_all"]),
    ]
    lines = [
        BEGIN,
        "## Analytics at scale",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at `{commit}` ({platform.machine()}, "
        f"Python {platform.python_version()}); edit outside the markers.",
        "",
        f"{c['sessions']:,} sessions on {plan.stations} stations over {DAYS} days, {c['meter_values']:,} meter values, "
        f"{c['status_changes']:,} status changes, SQLite; each report over the whole 30 days and every station, "
        f"median of {plan.repeats} runs. */ naive* is each time over that of the naive load report (every energy "
        "reading into Python, differenced and bucketed there), measured in the same run on the same database; its "
        f"buckets and the Python utilisation {'equal ours' if result['agree'] else 'DIFFER from ours'} "
        f"({result['buckets']:,} buckets). The "
        "machine is shared: compare the ratios, not the times.",
        "",
        "| report | median | / naive |",
        "|---|---|---|",
        *(f"| {name} | {sec * 1000:.0f} ms | {sec / s['naive_load']:.2f} |" for name, sec in rows),
        "",
        "The load report's differencing and bucketing run in SQL (a `LAG` window per transaction, a sum per bucket), "
        "reaching meter values through their transaction index, so Python sees one row per bucket; utilisation sums "
        "each connector's time per status in SQL (a `LEAD` window); patterns and users read one row per session.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_report(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1].lstrip("\n")
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 sessions, one run each")
    parser.add_argument("--output", type=Path, default=None, help="report file (default: see above)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output = args.output or (RESULTS_DIR / "BENCHMARKS-analytics-quick.md" if args.quick else ROOT / "BENCHMARKS.md")
    with tempfile.TemporaryDirectory(prefix="csms-analytics-") as workdir:
        result = asyncio.run(measure(f"sqlite+aiosqlite:///{Path(workdir) / 'analytics.db'}", plan))
    command = " ".join([".venv/bin/python -m benchmarks.run_analytics", *(argv if argv is not None else sys.argv[1:])])
    write_report(output, render(plan, result, command))
    print(f"wrote {output}: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result["seconds"].items()))
    return 0 if result["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
