"""The BENCHMARKS.md section of the resilience runs, rendered from each part's latest JSON result."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["BEGIN_MARK", "END_MARK", "PARTS", "current_section", "machine", "render", "write_section"]

ROOT = Path(__file__).resolve().parents[2]
BEGIN_MARK = "<!-- resilience:begin -->"
END_MARK = "<!-- resilience:end -->"
PARTS = (
    "kill",
    "kill_points",
    "kill_points_postgresql",
    "storm",
    "storm_auth",
    "soak",
    "churn",
    "halfopen",
    "bystanders",
)
# Each part's heading: a part with no result here keeps its block from the section already in the report.
TITLES = {
    "kill": "### kill -9 in a busy fleet",
    "kill_points": "### kill -9 at each point",
    "kill_points_postgresql": "### kill -9 at each point, on PostgreSQL",
    "storm": "### Reconnect storm",
    "storm_auth": "### Reconnect storm with Basic auth",
    "soak": "### Soak",
    "churn": "### Churn",
    "halfopen": "### Half-open connections",
    "bystanders": "### Bystanders under attack",
}
LEFT_OUT_TITLE = "### Left out"


def _git(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    return ""


def machine() -> dict[str, Any]:
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        "python": platform.python_version(),
        "websockets": importlib.metadata.version("websockets"),
        "git": _git("rev-parse", "--short", "HEAD") + ("-dirty" if _git("status", "--porcelain") else ""),
    }


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _header(data: dict[str, Any]) -> str:
    m = data["machine"]
    return (
        f"Run {m['date_utc']}, commit `{m['git']}`, {m['nproc']} shared cores (load average {m['loadavg'][0]:.1f} "
        f"at start), Python {m['python']}, websockets {m['websockets']}; `{data['command']}`, "
        f"{data['seconds'] / 60:.1f} min."
    )


def _kill(data: dict[str, Any]) -> list[str]:
    s = data["summary"]
    plan = data["plan"]
    rows = [
        ("SIGKILLs (iterations × kills)", f"{s['kills']} ({s['iterations']} × {plan['kills_per_iteration']})"),
        ("CALLs in flight at a kill", s["in_flight"]),
        ("… killed before their commit (during receive)", s["killed_before_commit"]),
        ("… killed after commit, before the reply was read", s["killed_after_commit_before_reply"]),
        ("… … then resent and answered again (same result, applied once)", s.get("committed_then_resent")),
        ("… … answered by the reply already on its way", s.get("committed_reply_read_after_kill")),
        ("Answered CALLs checked on disk at a kill (after reply)", s["answered_before_kill_checked"]),
        ("… of which missing on disk", s["answered_lost"]),
        ("Messages answered in total / queued offline and replayed late", f"{s['messages']} / {s['offline_messages']}"),
        ("Messages resent (first send unanswered)", s["resent"]),
        ("Longest event → answer delay (replayed late)", f"{_f(s['max_late_s'])} s"),
        ("Transactions / readings checked", f"{s['transactions']} / {s['readings']}"),
        ("Transactions lost / duplicated / phantom", _triple(s, "lost", "duplicated", "phantom")),
        ("1.6 transactionId answered ≠ stored row", s["wrong_transaction_ids"]),
        ("Stops missing or wrong", s["stops_missing"]),
        ("Readings lost / duplicated", f"{s['lost_readings']} / {s['duplicated_readings']}"),
        (
            "Readings outside a transaction checked / lost / duplicated",
            f"{s.get('idle_readings', '–')} / {s.get('lost_idle_readings', '–')} / "
            f"{s.get('duplicated_idle_readings', '–')}",
        ),
        ("CALLERRORs to transaction messages", s["call_errors"]),
        ("Server ERROR log lines", s["server_errors"]),
        (
            "Iterations whose queues did not drain in time / messages left unsent",
            f"{s['undrained_iterations']} / {s['unanswered_messages']}",
        ),
        ("Server start, median / max (same database)", f"{_f(s['restart_s_median'])} s / {_f(s['restart_s_max'])} s"),
    ]
    lines = [
        TITLES["kill"],
        "",
        f"{plan['stations']} raw stations (half 1.6, half 2.0.1), transactions back to back (an event every "
        f"~{plan['interval'] * 1000:.0f} ms per station, {plan['meters_per_tx']} readings per transaction and one "
        "reading outside a transaction after each), "
        f"SIGKILL {plan['busy_s'][0]:g}–{plan['busy_s'][1]:g} s after the fleet is back (half of the kills wait "
        f"for a CALL in flight), down {plan['down_s'][0]:g}–{plan['down_s'][1]:g} s, restarted on the same "
        "SQLite file (WAL, `synchronous=normal`). The database is read at each kill and after a clean stop.",
        "",
        "| | |",
        "|---|---:|",
        *(f"| {name} | {_f(value)} |" for name, value in rows),
        "",
        f"**Violations: {s['violations']}.**",
    ]
    if s["details"]:
        lines += ["", "First problems found:", *(f"- `{d}`" for d in s["details"][:10])]
    return lines


_POINT_NAMES = {
    "after_receive": "after receive",
    "after_commit": "after commit, before reply",
    "after_reply": "after reply",
}


def _kill_points(data: dict[str, Any]) -> list[str]:
    s = data["summary"]
    plan = data["plan"]
    points = s["points"]
    on_postgresql = plan.get("database", "sqlite") == "postgresql"
    database = (
        "database of a throwaway PostgreSQL 15 cluster (fsync on, `synchronous_commit=on`; the writer commits each "
        "batch on its thread before the replies)"
        if on_postgresql
        else "SQLite file (WAL, `synchronous=normal`)"
    )

    def row(name: str, value: Callable[[dict[str, Any]], Any]) -> str:
        return f"| {name} | " + " | ".join(_f(value(points[p])) for p in _POINT_NAMES) + " |"

    def caught(p: dict[str, Any]) -> str:
        kinds = p["caught"]
        return " / ".join(str(kinds.get(k, 0)) for k in ("start", "meter", "stop", "idle"))

    lines = [
        TITLES["kill_points_postgresql" if on_postgresql else "kill_points"],
        "",
        f"The server's test hook (`CSMS_KILL_AT=<point>:<n>`, docs/security.md) SIGKILLs it the n-th time a "
        f"transaction message reaches the point, n uniform in {plan['nth'][0]}–{plan['nth'][1]} after each start; "
        f"the points take turns. {plan['iterations']} iterations of {plan['kills_per_iteration']} kills, each on a "
        f"fresh {database} with {plan['stations']} raw stations (half 1.6, half 2.0.1, "
        f"an event every ~{plan['interval'] * 1000:.0f} ms per station, {plan['meters_per_tx']} readings per "
        "transaction and one outside it) that keep charging and queue offline while the server is down "
        f"({plan['down_s'][0]:g}–{plan['down_s'][1]:g} s after each kill, plus the restart). The caught message is "
        "judged at once (server dead) against its point; the rest of the fleet's CALLs in flight and every CALL "
        "answered so far are checked too; after the last kill the fleet drains and the same oracle as above judges "
        "the database.",
        "",
        "| | " + " | ".join(_POINT_NAMES.values()) + " |",
        "|---|---:|---:|---:|",
        row("Kills at the point (armed starts)", lambda p: f"{p['killed']} ({p['armed']})"),
        row("Caught: start / reading / stop / reading outside a transaction", caught),
        row("… sent by a 1.6 station / first send of the message", lambda p: f"{p['caught_v16']} / {p['first_send']}"),
        row("… caught while the fleet replayed its offline queues", lambda p: p["during_replay"]),
        row("… effect on disk while the server was dead", lambda p: p["on_disk"]),
        row("… charger read the reply to the caught send", lambda p: p["reply_read"]),
        row("… resent after the restart and answered", lambda p: p["resent"]),
        row(
            "n (median) / seconds from ready to kill (median)",
            lambda p: f"{p['nth_median']} / {_f(p['seconds_to_kill_median'])}",
        ),
        row(
            "Other stations' CALLs in flight at the kills (committed)",
            lambda p: f"{p['others_in_flight']} ({p['others_committed']})",
        ),
        row(
            "Answered CALLs checked on disk at the kills / missing",
            lambda p: f"{_f(p['answered_checked'])} / {p['answered_lost']}",
        ),
        row("Caught message not where its point says", lambda p: p["problems"]),
        "",
        "| After the last kill, all iterations | |",
        "|---|---:|",
        f"| Messages answered / queued offline and replayed late / resent | {_f(s['messages'])} / "
        f"{_f(s['offline_messages'])} / {_f(s['resent'])} |",
        f"| Transactions / readings checked | {_f(s['transactions'])} / {_f(s['readings'])} |",
        f"| Transactions lost / duplicated / phantom | {_triple(s, 'lost', 'duplicated', 'phantom')} |",
        f"| 1.6 transactionId answered ≠ stored row | {s['wrong_transaction_ids']} |",
        f"| Stops missing or wrong | {s['stops_missing']} |",
        f"| Readings lost / duplicated | {s['lost_readings']} / {s['duplicated_readings']} |",
        f"| Readings outside a transaction checked / lost / duplicated | {_f(s['idle_readings'])} / "
        f"{s['lost_idle_readings']} / {s['duplicated_idle_readings']} |",
        f"| CALLERRORs / server ERROR log lines | {s['call_errors']} / {s['server_errors']} |",
        f"| Iterations not drained in time / messages left unsent | {s['undrained_iterations']} / "
        f"{s['unanswered_messages']} |",
        f"| Server start, median (same database; imports from compiled bytecode: "
        f"{'yes' if s.get('bytecode_cached') else 'no'}) | {_f(s['restart_s_median'])} s |",
        "",
        f"**Violations: {s['violations']}.**",
    ]
    if s["details"]:
        lines += ["", "First problems found:", *(f"- `{d}`" for d in s["details"][:10])]
    return lines


def _triple(s: dict[str, Any], a: str, b: str, c: str) -> str:
    return f"{s[f'{a}_transactions']} / {s[f'{b}_transactions']} / {s[f'{c}_transactions']}"


def _storm(data: dict[str, Any]) -> list[str]:
    s = data["summary"]
    auth = bool(s.get("basic_auth"))
    lines = [
        TITLES["storm_auth" if auth else "storm"],
        "",
        f"{s['stations']} stations connected and booted (half 1.6 retrying every {s['fixed_retry_s']:g} s in "
        f"lockstep, half 2.0.1 with exponential back-off and random jitter), then the server is SIGKILLed and "
        "restarted at once. Back = BootNotification Accepted and a Heartbeat answered on the new connection; "
        "times from the moment the restarted listener accepts TCP.",
    ]
    if auth:
        lines.append(
            f"Every station has security profile 1 and its own password (provisioned through the API in "
            f"{_f(s.get('provision_s'))} s) and logs in with Basic auth; the restarted server checks each password "
            "against its argon2id hash at the default (production) cost, starting cold (logins it verifies are "
            "then remembered in memory: docs/security.md). The floor, measured in the same run: the fleet's first "
            "connect, which verifies every password once and retries nothing, took "
            f"{_f(s['initial_connect_s'])} s."
        )
    lines += [
        "",
        "| | all | 1.6, no jitter | 2.0.1, jittered back-off |",
        "|---|---:|---:|---:|",
    ]
    groups = (s["all"], s["v16"], s["v201"])
    for label, key, unit in (
        ("Back", "back", ""),
        ("Reconnect p50", "p50_s", " s"),
        ("Reconnect p99", "p99_s", " s"),
        ("All back after", "max_s", " s"),
        ("Successful attempt (connect + boot + heartbeat) p50", "serve_p50_s", " s"),
        ("Successful attempt p99", "serve_p99_s", " s"),
        ("Failed attempts (refused, timeouts, resets)", "failed_attempts", ""),
    ):
        cells = [_f(g.get(key), 2) + unit for g in groups]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines += [
        "",
        f"Server restart to listener ready: {_f(s['listener_s'])} s; initial connect of the fleet: "
        f"{_f(s['initial_connect_s'])} s. RSS after the storm {_f(s['rss_after_mb'])} MB vs "
        f"{_f(s['rss_before_mb'])} MB before the kill. Errors in the server log: {s['server_errors']}.",
    ]
    checks = s.get("password_checks")
    if auth and checks:
        attempts = s["all"]["attempts"]
        ratio = s["all"]["max_s"] / s["initial_connect_s"] if s["all"]["max_s"] else None
        lines += [
            "",
            f"Logins the restarted server decided until everyone was back: {_f(checks['argon2'])} argon2id "
            f"verifications, {_f(checks['remembered'])} admitted from memory (verified before), {_f(checks['joined'])} "
            f"that waited for a verification already running for the same station, for {_f(attempts)} attempts. "
            f"All back after {_f(ratio, 2)} x the floor (the first connect's time).",
        ]
    steady = s.get("steady")
    if steady:
        lines += [
            "",
            f"Steady state after the storm: every station sends a Heartbeat every {_f(steady['heartbeat_s'])} s; "
            f"of the {_f(steady['calls'])} sent {_f(steady['from_s'], 0)}-{_f(steady['until_s'], 0)} s after the "
            f"listener came back, p50 {_f(steady['p50_ms'])} ms, p99 {_f(steady['p99_ms'])} ms; "
            f"{steady['errors']} failed.",
        ]
    return lines


def _soak(data: dict[str, Any]) -> list[str]:
    s = data["summary"]
    lines = [
        TITLES["soak"],
        "",
        f"{_f(s['target'])} connections requested, **{_f(s['connected'])} connected** "
        f"({s['stop_reason']}). Each booted, then sent a Heartbeat every {s['heartbeat_s']:g} s, and "
        f"{s['transaction_share'] * 100:.0f} % of them MeterValues every {s['meter_s']:g} s: "
        f"{_f(s['offered_rate'])} msg/s offered for {s['duration_s'] / 60:.1f} min after a "
        f"{s['warmup_s']:g} s warm-up.",
        "",
        "| | |",
        "|---|---:|",
        f"| Messages answered / errors | {_f(s['answered'])} / {_f(s['errors'])} |",
        f"| Latency p50 / p99 / max | {_f(s['p50_ms'])} / {_f(s['p99_ms'])} / {_f(s['max_ms'])} ms |",
        f"| Server RSS idle (no connections) | {_f(s['rss_idle_mb'])} MB |",
        f"| Server RSS after warm-up → end | {_f(s['rss_warm_mb'])} → {_f(s['rss_end_mb'])} MB |",
        f"| RSS growth after warm-up (bound {_f(s['growth_bound_pct'])} %) | {_f(s['growth_pct'])} % |",
        f"| RSS per connection (vs the idle server, same run) | {_f(s['kb_per_connection'])} kB |",
        f"| Server CPU during the soak | {_f(s['cpu_pct'])} % of one core |",
        f"| Open fds at peak / after all closed (idle: {_f(s['fds_idle'])}) | {_f(s['fds_peak'])} / "
        f"{_f(s['fds_after'])} |",
    ]
    return lines


def _churn(data: dict[str, Any]) -> list[str]:
    s = data["summary"]
    return [
        TITLES["churn"],
        "",
        f"{_f(s['cycles'])} connect → boot → heartbeat → disconnect cycles, {_f(s['concurrency'])} at a time, "
        f"{_f(s['dirty'])} of them dirty (TCP reset, no close frame). Measured after the churn, against the "
        "same server before it:",
        "",
        "| | before | after |",
        "|---|---:|---:|",
        f"| Sessions in the registry | {s['before']['sessions']} | {s['after']['sessions']} |",
        f"| asyncio tasks | {s['before']['tasks']} | {s['after']['tasks']} |",
        f"| Open fds | {s['before']['fds']} | {s['after']['fds']} |",
        f"| RSS | {_f(s['before']['rss_mb'])} MB | {_f(s['after']['rss_mb'])} MB ({_f(s['rss_growth_pct'])} %) |",
        "",
        f"Cycles that failed: {s['failed']}. Server ERROR log lines: {s['server_errors']}.",
    ]


def _halfopen(data: dict[str, Any]) -> list[str]:
    s = data["summary"]
    lines = [
        TITLES["halfopen"],
        "",
        f"Server keepalive: ping every {s['ping_interval']:g} s, {s['ping_timeout']:g} s to answer, then "
        f"{s['close_timeout']:g} s for the closing handshake (`ocpp.ping_interval`, `ping_timeout`, "
        "`close_timeout`). A station boots, then its peer vanishes without FIN:",
        "",
        "| How the peer vanished | freed after (session gone) | socket released after | station served again |",
        "|---|---:|---:|---|",
    ]
    for case in s["cases"]:
        lines.append(
            f"| {case['how']} | {_f(case.get('freed_s'))} s | "
            f"{_f(case.get('fd_released_s')) + ' s' if case.get('fd_released') else 'never'} | "
            f"{'yes' if case.get('reconnected') else 'no'} |"
        )
    lines += ["", f"Expected bound: ping interval + ping timeout + close timeout = {s['bound_s']:g} s."]
    return lines


def _bystanders(data: dict[str, Any]) -> list[str]:
    s = data["summary"]
    phases = {p["name"]: p for p in s["phases"]}
    lines = [
        TITLES["bystanders"],
        "",
        f"{_f(s['stations'])} booted stations send a Heartbeat every {_f(s['stations'] / s['offered_rate'])} s "
        f"({_f(s['offered_rate'])} calls/s) through three {_f(s['phase_s'])}-second phases: nothing else (the "
        "baseline), half-sent handshakes held open by an attacker (each dropped at `ocpp.open_timeout` is reopened "
        "at once; anchor test #15), and stations that stop reading while flooding CALLs (anchor test #30). Fresh "
        "stations connect and boot during every phase.",
        "",
        "| phase | bystander calls | errors | p50 ms | p99 ms | max ms | p99 / quiet p99 | fresh stations booted "
        "(slowest) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in s["phases"]:
        lines.append(
            f"| {p['name']} | {_f(p['calls'])} | {p['errors']} | {_f(p['p50_ms'])} | {_f(p['p99_ms'])} | "
            f"{_f(p['max_ms'])} | {_f(p['p99_vs_quiet'], 2)} | {p['fresh_connected']} of "
            f"{p['fresh_connected'] + p['fresh_failed']} ({_f(p['fresh_max_s'], 2)} s) |"
        )
    idle, deaf = phases.get("idle sockets", {}), phases.get("deaf stations", {})
    lines += [
        "",
        f"Idle sockets: {_f(idle.get('idle_sockets'))} held at once; the server dropped "
        f"{_f(idle.get('dropped_by_server'))} (median lifetime {_f(idle.get('lifetime_median_s'))} s, longest "
        f"{_f(idle.get('lifetime_max_s'))} s); "
        f"{_f(idle.get('connects_refused'))} attacker connects refused; that is "
        f"{_f((idle.get('dropped_by_server') or 0) / s['phase_s'], 0)} new connections a second. Deaf stations: "
        f"{_f(deaf.get('cut_off'))} of {_f(deaf.get('deaf_stations'))} cut off (the last after "
        f"{_f(deaf.get('cut_after_max_s'))} s), {_f(deaf.get('frames_each'))} CALLs flooded by each. "
        f"Server ERROR log lines: {len(s['server_errors'])}; violations: {s['violations']}.",
    ]
    return lines


RENDERERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "kill": _kill,
    "kill_points": _kill_points,
    "kill_points_postgresql": _kill_points,
    "storm": _storm,
    "storm_auth": _storm,
    "soak": _soak,
    "churn": _churn,
    "halfopen": _halfopen,
    "bystanders": _bystanders,
}


def previous_blocks(section: str) -> dict[str, str]:
    """Each part's block in an earlier rendering of the section, from its heading to the next part's or the end."""
    starts = sorted((section.find(title + "\n"), name) for name, title in TITLES.items() if title + "\n" in section)
    ends = [start for start, _ in starts[1:]] + [len(section)] * bool(starts)
    blocks: dict[str, str] = {}
    for (start, name), end in zip(starts, ends, strict=True):
        block = section[start:end]
        for stop in (LEFT_OUT_TITLE, END_MARK):
            block = block.partition(stop)[0]
        blocks[name] = block.strip("\n")
    return blocks


def current_section(path: Path) -> str:
    text = path.read_text() if path.exists() else ""
    return text.partition(BEGIN_MARK)[2].partition(END_MARK)[0]


def render(parts: dict[str, dict[str, Any]], notes: list[str], previous: str = "") -> str:
    """The section; a part without a result keeps its block from ``previous`` (the section as it was)."""
    kept = previous_blocks(previous)
    lines = [
        BEGIN_MARK,
        "## Faults and durability",
        "",
        "Generated by `benchmarks/run_resilience.py` (how it works: `docs/security.md`, *Faults and durability*). "
        "Every run starts `python -m csms serve` as its own process on a SQLite file (the second kill-point block: "
        "on PostgreSQL) and drives it over loopback with raw OCPP-J clients in the harness process.",
        "",
        "**Caveat: every figure here comes from a shared, loaded machine with 2 cores**: other sessions' test suites "
        "and benchmarks ran at the same time (each run's load average at start is in its last line). Times (server "
        "start, reconnects, drains) are inflated and vary from run to run; the counts and the violation checks do "
        "not depend on the load.",
    ]
    for name in PARTS:
        lines.append("")
        data = parts.get(name)
        if data is None:
            lines.append(kept.get(name, f"### {name}: not run yet (`run_resilience.py {name}`)"))
            continue
        lines += RENDERERS[name](data)
        lines += ["", _header(data)]
    if notes:
        lines += ["", "### Left out", "", *(f"- {note}" for note in notes)]
    lines.append(END_MARK)
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN_MARK in text and END_MARK in text:
        head, _, rest = text.partition(BEGIN_MARK)
        _, _, tail = rest.partition(END_MARK)
        path.write_text(head + section.rstrip("\n") + tail)
    else:
        path.write_text(text.rstrip("\n") + "\n\n" + section)


def load_parts(results_dir: Path, quick: bool) -> dict[str, dict[str, Any]]:
    parts: dict[str, dict[str, Any]] = {}
    for name in PARTS:
        path = results_dir / f"resilience-{name}{'-quick' if quick else ''}.json"
        if path.exists():
            parts[name] = json.loads(path.read_text())
    return parts
