"""Faults and durability runs against a real ``csms serve`` process; results go to BENCHMARKS.md.

``python -m benchmarks.run_resilience kill``      kill -9 iterations in a busy 1.6/2.0.1 fleet, database judged
``python -m benchmarks.run_resilience kill_points``  kill -9 by the server's test hook, 100 times at each point
    (``--database postgresql``: the same on a throwaway PostgreSQL cluster; its own block in the report)
``python -m benchmarks.run_resilience storm``     2,000 stations reconnecting at once after a kill -9 + restart
``python -m benchmarks.run_resilience storm_auth``  the same storm with Basic auth (argon2id) and a steady phase
``python -m benchmarks.run_resilience soak``      10,000 connections (or the most this machine allows), RSS trend
``python -m benchmarks.run_resilience churn``     connect/disconnect cycles, half dirty: sessions, tasks, fds
``python -m benchmarks.run_resilience halfopen``  a peer that vanishes without FIN: time until it is freed
``python -m benchmarks.run_resilience bystanders``  1,000 stations' latency while idle sockets and deaf stations attack
``python -m benchmarks.run_resilience all``       every part in turn (several parts may be named: ``storm soak``)

``--quick`` runs a small, short version of a part (the suite's tests use it) and writes its report to
``benchmarks/results/BENCHMARKS-resilience-quick.md`` unless ``--output`` says otherwise; a full run rewrites the
section between ``<!-- resilience:begin -->`` and ``<!-- resilience:end -->`` of BENCHMARKS.md. Each part's raw
result is kept in ``benchmarks/results/resilience-<part>[-quick].json`` (gitignored) and the section is rendered
from the latest result of every part (a part with no result keeps its block from the section as it was).
Everything runs on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks._common import raise_fd_limit
from benchmarks.resilience import report

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"

LEFT_OUT = [
    "PostgreSQL: only the kill-point campaign ran on it (its own block above); the random kills, storms, soak, "
    "churn and the rest ran on SQLite (WAL, `synchronous=normal`, which survives a killed process but not a power "
    'cut; `database.synchronous = "full"` does).',
    "Power loss and OS crashes (only the process is killed), disk-full and I/O errors.",
    "BootNotification Pending with an interval as a shedding valve during a storm (not implemented).",
    "Hour-long soaks: the soak is bounded to minutes on a shared machine; a slow leak below the bound would not show.",
]


Progress = Callable[[str], None]


async def _kill(quick: bool, args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    from benchmarks.resilience.kill import QUICK_KILL, KillPlan, run_kill, summarise_kill

    plan = QUICK_KILL if quick else KillPlan()
    if args.iterations is not None:
        plan = replace(plan, iterations=args.iterations)
    results = await run_kill(plan, workdir, progress)
    return {"plan": asdict(plan), "summary": summarise_kill(results), "iterations": [asdict(r) for r in results]}


async def _kill_points(quick: bool, args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    from benchmarks.resilience.kill_points import (
        QUICK_KILL_POINTS,
        KillPointsPlan,
        run_kill_points,
        summarise_kill_points,
    )

    plan = replace(QUICK_KILL_POINTS if quick else KillPointsPlan(), database=args.database)
    if args.kills_per_point is not None:
        plan = replace(plan, kills_per_point=args.kills_per_point)
    results = await run_kill_points(plan, workdir, progress)
    return {
        "plan": asdict(plan) | {"iterations": plan.iterations},
        "summary": summarise_kill_points(results),
        "iterations": [asdict(r) for r in results],
    }


Part = Callable[[bool, argparse.Namespace, Path, Progress], Coroutine[Any, Any, dict[str, Any]]]


async def _storm(quick: bool, args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    from benchmarks.resilience.storm import QUICK_STORM, StormPlan, run_storm

    plan = QUICK_STORM if quick else StormPlan()
    if args.stations is not None:
        plan = replace(plan, stations=args.stations)
    return {"plan": asdict(plan), "summary": await run_storm(plan, workdir, progress)}


async def _storm_auth(quick: bool, args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    from benchmarks.resilience.storm import QUICK_STORM_AUTH, STORM_AUTH, run_storm

    plan = QUICK_STORM_AUTH if quick else STORM_AUTH
    if args.stations is not None:
        plan = replace(plan, stations=args.stations)
    return {"plan": asdict(plan), "summary": await run_storm(plan, workdir, progress)}


async def _halfopen(quick: bool, args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    from benchmarks.resilience.halfopen import QUICK_HALFOPEN, HalfOpenPlan, run_halfopen

    plan = QUICK_HALFOPEN if quick else HalfOpenPlan()
    return {"plan": asdict(plan), "summary": await run_halfopen(plan, workdir, progress)}


async def _soak(quick: bool, args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    from benchmarks.resilience.soak import QUICK_SOAK, SoakPlan, run_soak

    plan = QUICK_SOAK if quick else SoakPlan()
    if args.stations is not None:
        plan = replace(plan, connections=args.stations)
    if args.minutes is not None:
        plan = replace(plan, duration_s=args.minutes * 60)
    return {"plan": asdict(plan), "summary": await run_soak(plan, workdir, progress)}


async def _churn(quick: bool, args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    from benchmarks.resilience.soak import QUICK_CHURN, ChurnPlan, run_churn

    plan = QUICK_CHURN if quick else ChurnPlan()
    if args.cycles is not None:
        plan = replace(plan, cycles=args.cycles)
    return {"plan": asdict(plan), "summary": await run_churn(plan, workdir, progress)}


async def _bystanders(quick: bool, args: argparse.Namespace, workdir: Path, progress: Progress) -> dict[str, Any]:
    from benchmarks.resilience.bystanders import QUICK_BYSTANDERS, BystandersPlan, run_bystanders

    plan = QUICK_BYSTANDERS if quick else BystandersPlan()
    if args.stations is not None:
        plan = replace(plan, stations=args.stations)
    return {"plan": asdict(plan), "summary": await run_bystanders(plan, workdir, progress)}


def parts() -> dict[str, Part]:
    return {
        "kill": _kill,
        "kill_points": _kill_points,
        "storm": _storm,
        "storm_auth": _storm_auth,
        "soak": _soak,
        "churn": _churn,
        "halfopen": _halfopen,
        "bystanders": _bystanders,
    }


def result_name(name: str, database: str) -> str:
    """The name a part's result and report block go under: kill_points on PostgreSQL has a block of its own."""
    if database == "sqlite":
        return name
    if name != "kill_points":
        raise SystemExit(f"--database {database}: only kill_points runs on it")
    return f"{name}_{database}"


def violations(name: str, data: dict[str, Any]) -> int:
    """Failures a part found (0 means the part passed what it checks)."""
    summary = data["summary"]
    return int(summary.get("violations", 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names_run = list(parts())
    parser.add_argument("parts", nargs="+", choices=[*names_run, "all"], metavar="part", help=", ".join(names_run))
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke run, not a measurement")
    parser.add_argument("--iterations", type=int, default=None, help="kill: iterations")
    parser.add_argument("--kills-per-point", type=int, default=None, help="kill_points: kills at each point")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="kill_points: the server's database (postgresql: a throwaway cluster, initdb/pg_ctl on PATH)",
    )
    parser.add_argument("--stations", type=int, default=None, help="storm/soak/bystanders: stations")
    parser.add_argument("--minutes", type=float, default=None, help="soak: minutes measured after the warm-up")
    parser.add_argument("--cycles", type=int, default=None, help="churn: connect/disconnect cycles")
    parser.add_argument("--output", type=Path, default=None, help="report file (default: see above)")
    parser.add_argument("--results", type=Path, default=None, help="directory for the JSON results")
    args = parser.parse_args(argv)
    raise_fd_limit()
    results_dir: Path = args.results or RESULTS_DIR
    results_dir.mkdir(parents=True, exist_ok=True)
    output = args.output or (RESULTS_DIR / "BENCHMARKS-resilience-quick.md" if args.quick else ROOT / "BENCHMARKS.md")
    began = time.monotonic()

    def progress(message: str) -> None:
        print(f"[run_resilience {time.monotonic() - began:7.1f} s] {message}", flush=True)

    available = parts()
    names = [n for n in report.PARTS if n in available] if "all" in args.parts else args.parts
    if args.database != "sqlite":
        for name in names:
            result_name(name, args.database)  # only the parts that run on that database
    failed = 0
    command = " ".join([".venv/bin/python -m benchmarks.run_resilience", *(argv if argv is not None else sys.argv[1:])])
    for name in names:
        if name not in available:
            progress(f"{name}: not implemented")
            failed += 1
            continue
        started, machine = time.monotonic(), report.machine()
        with tempfile.TemporaryDirectory(prefix=f"csms-{name}-") as workdir:
            data = asyncio.run(available[name](args.quick, args, Path(workdir), progress))
        data |= {"machine": machine, "command": command, "seconds": time.monotonic() - started, "quick": args.quick}
        path = results_dir / f"resilience-{result_name(name, args.database)}{'-quick' if args.quick else ''}.json"
        path.write_text(json.dumps(data, indent=2, default=str))
        found = violations(name, data)
        failed += found
        progress(f"{name}: {found} violations; wrote {path}")
    section = report.render(report.load_parts(results_dir, args.quick), LEFT_OUT, report.current_section(output))
    report.write_section(output, section)
    progress(f"wrote {output}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
