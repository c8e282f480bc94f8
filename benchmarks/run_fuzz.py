"""Long OCPP fuzz run: every action of 1.6 and 2.0.1, many hypothesis examples each (engine: benchmarks/fuzzing.py).

``python -m benchmarks.run_fuzz``           300 examples per handled action, 50 per other action, and 100 fuzzed
                                            charger answers per operator command of each version; rewrites the
                                            "Fuzzing" section of BENCHMARKS.md
``python -m benchmarks.run_fuzz --mutations 10000``
                                            bulk mode (benchmarks/fuzz_bulk.py): 10,000 mutated frames per action,
                                            every action, plus 500 valid CALLs each, from 2 worker processes
                                            (--workers); same checks per frame; rewrites the section too
``python -m benchmarks.run_fuzz --quick``   2 / 1 / 2 examples, seconds; prints its report only

Two passes: frames a charger sends (benchmarks/fuzzing.py, or benchmarks/fuzz_bulk.py in bulk mode), then the
charger's answers to our commands sent through the HTTP API (benchmarks/fuzz_answers.py).

The server runs in this process (a thread with its own event loop) on a temporary SQLite file, with logs routed
through the standard library so that every ERROR line is counted. Exit status 1 when any check failed or any
ERROR was logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from hypothesis import HealthCheck, given, settings, strategies as st

from benchmarks.fuzz_answers import COMMAND_BODIES, AnswerStation, AnswerTally, FuzzAnswer, answer_frames
from benchmarks.fuzz_bulk import BulkPlan, run_bulk
from benchmarks.fuzzing import (
    SUBPROTOCOLS,
    FuzzClient,
    FuzzFrame,
    ServerThread,
    Tally,
    actions,
    call_frames,
    raw_frames,
)
from csms.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
_API_TOKEN = "fuzz-admin-token-0123456789abcdef"
BEGIN_MARK = "<!-- fuzz:begin -->"
END_MARK = "<!-- fuzz:end -->"


class _ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage()[:300])


@dataclass
class Report:
    tally: Tally
    failures: list[str]
    error_logs: list[str]
    seconds: float
    handled_examples: int
    other_examples: int
    answers: AnswerTally
    answer_examples: int
    bulk: BulkPlan | None = None  # the bulk mode's plan; None for the hypothesis-driven frames pass
    frames_seconds: float = 0.0  # the frames pass alone
    pool_sizes: dict[str, int] | None = None  # bulk mode: distinct valid payloads drawn per action

    def as_json(self) -> dict[str, Any]:
        mutated = self.tally.mutated.values()
        return {
            "examples": self.tally.examples,
            "mutated_per_action": {"min": min(mutated, default=0), "max": max(mutated, default=0)},
            "frames_seconds": round(self.frames_seconds, 1),
            "results": self.tally.results,
            "errors": dict(self.tally.errors),
            "silent": self.tally.silent,
            "actions": len(self.tally.actions),
            "mutations": dict(self.tally.mutations),
            "failures": self.failures,
            "error_logs": self.error_logs,
            "seconds": round(self.seconds, 1),
            "answers": {
                "examples": self.answers.examples,
                "commands": len(self.answers.commands),
                "outcomes": dict(self.answers.outcomes),
                "mutations": dict(self.answers.mutations),
            },
        }


def _frames(subprotocol: str, action: str) -> st.SearchStrategy[FuzzFrame]:
    return st.one_of(
        call_frames(subprotocol, action, mutate=False),
        call_frames(subprotocol, action),
        call_frames(subprotocol, action),
        raw_frames(subprotocol, action),
    )


def run(handled_examples: int, other_examples: int, answer_examples: int, bulk: BulkPlan | None = None) -> Report:
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.KeyValueRenderer(key_order=["event"])],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    counter = _ErrorCounter()
    logging.getLogger().addHandler(counter)
    logging.getLogger().setLevel(logging.ERROR)
    tally = Tally()
    answers = AnswerTally()
    failures: list[str] = []
    pool_sizes: dict[str, int] | None = None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        config = {
            # No keepalive pings: websockets draws their payload from `random`, and hypothesis warns when the
            # global random state moves while it draws an example (the server runs in this process).
            # A call timeout far beyond the API client's: an answer left waiting fails a check instead of a 504.
            "ocpp": {"host": "127.0.0.1", "port": 0, "call_timeout": 300, "ping_interval": None},
            "api": {"host": "127.0.0.1", "port": 0, "admin_token": _API_TOKEN},
            "database": {"url": f"sqlite+aiosqlite:///{Path(tmp) / 'fuzz.db'}"},
            "stations": {"auto_register": True, "allow_unknown_tokens": True},
            "log": {"level": "error"},
        }
        with ServerThread(load_settings(None, **config)) as server:
            if bulk is not None:
                outcome = run_bulk(server.url(""), bulk, progress=_progress)
                tally, pool_sizes = outcome.tally, outcome.pool_sizes
                failures += outcome.failures
            else:
                _fuzz_every_action(server, tally, handled_examples, other_examples, failures)
            frames_seconds = time.perf_counter() - started
            api = f"http://127.0.0.1:{server.system.api_port}/api/v1"
            headers = {"Authorization": f"Bearer {_API_TOKEN}"}
            for subprotocol in SUBPROTOCOLS:
                identity = f"ANSWERS-{subprotocol}"
                station = AnswerStation(server.url(identity), api, headers, subprotocol, identity)
                station.tally = answers
                for route, body in COMMAND_BODIES:
                    action = station.action_of(route, body)
                    if action is None:  # the version has no such command
                        continue
                    failure = _fuzz_answers(station, route, body, action, answer_examples)
                    if failure is not None:
                        failures.append(f"{subprotocol} answers to {route} ({action}): {failure}")
                        station.close()
                        station = AnswerStation(server.url(identity), api, headers, subprotocol, identity)
                        station.tally = answers
                station.close()
    logging.getLogger().removeHandler(counter)
    seconds = time.perf_counter() - started
    report = Report(tally, failures, counter.lines, seconds, handled_examples, other_examples, answers, answer_examples)
    report.bulk, report.frames_seconds, report.pool_sizes = bulk, frames_seconds, pool_sizes
    return report


def _progress(line: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {line}", file=sys.stderr, flush=True)


def _fuzz_every_action(server: ServerThread, tally: Tally, handled: int, other: int, failures: list[str]) -> None:
    """The hypothesis-driven frames pass: one station per version, ``handled`` or ``other`` examples per action."""
    for subprotocol in SUBPROTOCOLS:
        client = FuzzClient(server.url(f"FUZZ-{subprotocol}"), subprotocol, tally)
        for action in actions(subprotocol):
            budget = handled if action in client.handled else other
            failure = _fuzz_action(client, action, budget)
            if failure is not None:
                failures.append(f"{subprotocol} {action}: {failure}")
                client.close()
                client = FuzzClient(server.url(f"FUZZ-{subprotocol}"), subprotocol, tally)
        client.close()


def _fuzz_answers(station: AnswerStation, route: str, body: dict[str, Any], action: str, budget: int) -> str | None:
    @settings(
        max_examples=budget,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    @given(answer=answer_frames(station.subprotocol, action))
    def check(answer: FuzzAnswer) -> None:
        station.check(route, body, action, answer)

    try:
        check()
    except Exception as exc:  # a falsified check: reported, and the run goes on with the next command
        return f"{type(exc).__name__}: {str(exc)[:500]}"
    return None


def _fuzz_action(client: FuzzClient, action: str, budget: int) -> str | None:
    @settings(
        max_examples=budget,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    @given(frame=_frames(client.subprotocol, action))
    def check(frame: FuzzFrame) -> None:
        client.check(action, frame)

    try:
        check()
    except Exception as exc:  # a falsified check: reported, and the run goes on with the next action
        return f"{type(exc).__name__}: {str(exc)[:500]}"
    return None


def render(report: Report) -> str:
    tally = report.tally
    codes = ", ".join(f"{code} {count}" for code, count in tally.errors.most_common())
    mutations = ", ".join(f"{name} {count}" for name, count in tally.mutations.most_common())
    answer_mutations = ", ".join(f"{name} {count}" for name, count in report.answers.mutations.most_common())
    outcomes = ", ".join(f"{name}: {count}" for name, count in report.answers.outcomes.most_common())
    actions_16 = len(actions("ocpp1.6"))
    actions_201 = len(actions("ocpp2.0.1"))
    mutated = tally.mutated.values()
    if report.bulk is None:
        command = "python -m benchmarks.run_fuzz"
        plan_rows = [
            f"| examples per action | {report.handled_examples} where we handle the action, "
            f"{report.other_examples} otherwise (hypothesis-driven) |",
        ]
        how = "Every frame went over a real websocket to the real server and was followed by a Heartbeat sentinel; "
    else:
        plan = report.bulk
        command = f"python -m benchmarks.run_fuzz --mutations {plan.mutations} --workers {plan.workers}"
        pools = (report.pool_sizes or {}).values()
        plan_rows = [
            f"| mutated frames per action | {plan.mutations} asked on every action (two thirds mutated payloads, one "
            f"third mutated frames), plus {plan.valid} valid CALLs; sent and checked: {min(mutated, default=0)} to "
            f"{max(mutated, default=0)} per action |",
            f"| where the mutations start | up to {plan.pool} distinct hypothesis-drawn valid payloads per action "
            f"({min(pools, default=0)} to {max(pools, default=0)}: some schemas allow few), mutated by a random "
            f"generator seeded per action (seed {plan.seed}) |",
            f"| station connections | one per version in each of {plan.workers} worker processes, {plan.batch} frames "
            "(each with its sentinel) sent before their answers are read |",
        ]
        how = (
            "Bulk mode (`benchmarks/fuzz_bulk.py`): the same mutation functions as the hypothesis strategies, driven "
            "by a seeded random generator (a hypothesis example costs 3 to 13 ms to draw, the round trip 0.5 to 2 "
            "ms). Every frame went over a real websocket to the real server and was followed by a Heartbeat "
            "sentinel, checked as in the hypothesis run; "
        )
    return "\n".join(
        [
            "## OCPP fuzzing",
            "",
            f"Run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python "
            f"{platform.python_version()}: `{command}` ({report.seconds:.0f} s, of which the frames pass "
            f"{report.frames_seconds:.0f} s).",
            "",
            "| what | figure |",
            "|---|---|",
            f"| actions fuzzed | {len(tally.actions)} ({actions_16} of 1.6, {actions_201} of 2.0.1, both directions' "
            "request schemas) |",
            *plan_rows,
            f"| frames sent (each followed by a Heartbeat sentinel) | {tally.examples} |",
            f"| answered with CALLRESULT | {tally.results} |",
            f"| answered with CALLERROR | {sum(tally.errors.values())} ({codes}) |",
            f"| not answered (1.6 unknown message types, replies for nothing) | {tally.silent} |",
            f"| mutations | {mutations} |",
            f"| charger answers to our commands: commands fuzzed | {len(report.answers.commands)} (every operator "
            f"command of both versions, {report.answer_examples} examples each) |",
            f"| answers sent | {report.answers.examples} ({answer_mutations}) |",
            f"| API outcome of those commands | {outcomes} |",
            f"| failed checks | {len(report.failures)} |",
            f"| ERROR log lines (unhandled exceptions) | {len(report.error_logs)} |",
            "",
            how
            + "every fuzzed answer answered a command sent through the HTTP API, with a call timeout of 300 s and an "
            "API client that gives up after 20 s (no answer may wait for the timeout). Checks and mutations are "
            "described in `docs/security.md` (Hostile input, Fuzzing). Rerun: `.venv/bin/python -m "
            "benchmarks.run_fuzz --mutations 10000` (about 15 minutes on 2 shared cores; without `--mutations`: 300 "
            "hypothesis examples per handled action, minutes; both rewrite this section, 100 answers per command).",
        ]
    )


def _write_section(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    content = path.read_text(encoding="utf-8")
    start, end = content.index(BEGIN_MARK) + len(BEGIN_MARK), content.index(END_MARK)
    path.write_text(content[:start] + "\n" + text + "\n" + content[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few examples per action (seconds)")
    parser.add_argument("--examples", type=int, default=300, help="examples per handled action")
    parser.add_argument("--answers", type=int, default=100, help="fuzzed answers per operator command")
    parser.add_argument("--mutations", type=int, help="bulk mode: mutated frames per action (every action)")
    parser.add_argument("--valid", type=int, help="bulk mode: valid CALLs per action on top (default mutations/20)")
    parser.add_argument("--pool", type=int, default=500, help="bulk mode: valid payloads drawn per action")
    parser.add_argument("--workers", type=int, default=2, help="bulk mode: worker processes")
    parser.add_argument("--seed", type=int, default=0, help="bulk mode: seed of the mutations")
    parser.add_argument("--batch", type=int, default=8, help="bulk mode: frames sent before their answers are read")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    handled, other, answers = (2, 1, 2) if args.quick else (args.examples, max(1, args.examples // 6), args.answers)
    bulk = None
    if args.mutations is not None:
        valid = args.valid if args.valid is not None else max(1, args.mutations // 20)
        bulk = BulkPlan(args.mutations, valid, min(args.pool, args.mutations), args.workers, args.seed, args.batch)
    report = run(handled, other, answers, bulk)
    text = render(report)
    print(text)
    for line in report.failures + report.error_logs:
        print(line, file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=2), encoding="utf-8")
    if not (args.quick or args.no_write):
        _write_section(text)
    return 1 if report.failures or report.error_logs else 0


if __name__ == "__main__":
    sys.exit(main())
