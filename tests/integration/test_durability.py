"""kill -9 of a real ``csms serve`` process in a busy mixed 1.6/2.0.1 fleet loses and duplicates nothing.

A few iterations of the harness in ``benchmarks/resilience/kill.py`` (``run_resilience.py kill`` runs many):
SIGKILL at random moments, restart on the same database, stations replay their offline queues late, then the
database is judged against what every charger was told. Each test runs on a SQLite file and on PostgreSQL (where
installed).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from benchmarks.resilience.kill import QUICK_KILL, run_kill, summarise_kill
from benchmarks.resilience.oracle import read_db
from benchmarks.resilience.server import CsmsProcess
from benchmarks.resilience.station import wire_time
from tests.databases import new_postgres_database


@pytest.fixture(autouse=True)
def _server_without_asyncio_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server subprocess inherits the environment; asyncio's debug mode would only slow its restarts."""
    monkeypatch.delenv("PYTHONASYNCIODEBUG", raising=False)
    assert "PYTHONASYNCIODEBUG" not in os.environ


def _new_database(backend: str) -> Callable[[], str] | None:
    """Where a kill run's iterations get their database: None for a SQLite file each, else a fresh PostgreSQL
    database of the session's cluster."""
    return None if backend == "sqlite" else new_postgres_database


async def test_kill_nine_loses_nothing_and_duplicates_nothing(tmp_path: Path, any_database: str) -> None:
    """Every answered CALL is on disk at each kill; afterwards every transaction exists once with the charger's
    timestamps and ids, every reading once, the offline queues were replayed late and accepted."""
    plan = replace(
        QUICK_KILL,
        iterations=1,
        stations=12,
        interval=0.06,
        max_transactions=4,
        busy_s=(0.0, 0.5),
        in_flight_share=1.0,
        tail_s=0.5,
        seed=7,
    )
    summary = summarise_kill(await run_kill(plan, tmp_path, lambda _: None, _new_database(any_database)))
    assert summary["violations"] == 0, summary["details"]
    assert summary["answered_lost"] == 0 and summary["undrained_iterations"] == 0
    assert summary["lost_transactions"] == summary["duplicated_transactions"] == 0
    assert summary["lost_readings"] == summary["duplicated_readings"] == 0
    assert summary["wrong_transaction_ids"] == summary["phantom_transactions"] == summary["call_errors"] == 0
    # The run exercised what it claims: kills hit CALLs in flight, queues built up offline and were replayed.
    assert summary["kills"] == plan.kills_per_iteration and summary["in_flight"] > 0
    assert summary["answered_before_kill_checked"] > 0
    # (Whether a CALL killed after its commit is resent or its reply still read depends on timing; the resend
    # itself is checked deterministically in test_durability_replay.py.)
    assert summary["offline_messages"] > 0 and summary["max_late_s"] > 0
    assert summary["transactions"] > 2 * plan.stations and summary["readings"] > summary["transactions"]


async def _call(connection: ClientConnection, message_id: str, action: str, payload: dict[str, Any]) -> list[Any]:
    await connection.send(json.dumps([2, message_id, action, payload]))
    reply: list[Any] = json.loads(await asyncio.wait_for(connection.recv(), 10))
    assert reply[1] == message_id, reply
    return reply


async def _booted(url: str) -> ClientConnection:
    connection = await connect(url, subprotocols=[Subprotocol("ocpp1.6")], open_timeout=10, ping_interval=None)
    boot = await _call(connection, "boot", "BootNotification", {"chargePointVendor": "T", "chargePointModel": "K"})
    assert boot[2]["status"] == "Accepted"
    return connection


@pytest.mark.parametrize("point", ["after_receive", "after_commit", "after_reply"])
async def test_the_kill_hook_kills_at_its_point_and_the_resend_is_applied_once(
    tmp_path: Path, point: str, any_database: str
) -> None:
    """``CSMS_KILL_AT=<point>:2``: the server SIGKILLs itself at the second transaction message (the Boot and a
    Heartbeat before it do not count), exactly at its point: after_receive leaves nothing on disk and no reply;
    after_commit leaves the row on disk and no reply; after_reply leaves the row and delivers the reply. The
    charger resends the unanswered Start to the restarted server and gets the id of the one row on disk."""
    new_database = _new_database(any_database)
    server = CsmsProcess(tmp_path, database_url=None if new_database is None else new_database())
    url = f"{server.url}/KILL-HOOK"
    start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 100, "timestamp": wire_time(datetime.now(UTC))}
    await asyncio.to_thread(server.start, kill_at=f"{point}:2")
    try:
        connection = await _booted(url)
        await _call(connection, "hb", "Heartbeat", {})
        idle = {"connectorId": 1, "meterValue": [{"timestamp": start["timestamp"], "sampledValue": [{"value": "5"}]}]}
        assert (await _call(connection, "mv", "MeterValues", idle))[0] == 3  # the first transaction message
        await connection.send(json.dumps([2, "start", "StartTransaction", start]))
        try:
            first_reply: list[Any] | None = json.loads(await asyncio.wait_for(connection.recv(), 10))
        except ConnectionClosed:
            first_reply = None
        assert await asyncio.to_thread(server.wait_dead, 10) == -signal.SIGKILL
        await connection.close()
        markers = server.fail_point_markers()
        assert [(m["fail_point"], m["action"], m["message_id"]) for m in markers] == [
            (point, "StartTransaction", "start")
        ]
        rows = [r for rows in read_db(server.database).transactions.values() for r in rows]
        assert len(rows) == (0 if point == "after_receive" else 1)
        assert (first_reply is not None) == (point == "after_reply")
        # Restarted (hook off), the charger resends the Start it has no answer for, as it would after a drop.
        await asyncio.to_thread(server.start)
        connection = await _booted(url)
        resent = await _call(connection, "start", "StartTransaction", start)
        await connection.close()
    finally:
        await asyncio.to_thread(server.stop)
    rows = [r for rows in read_db(server.database).transactions.values() for r in rows]
    assert len(rows) == 1 and resent[2]["transactionId"] == rows[0].id
    if first_reply is not None:
        assert first_reply[2]["transactionId"] == rows[0].id
    assert server.error_lines() == []


async def test_the_kill_campaign_kills_once_at_each_point_and_loses_nothing(tmp_path: Path, any_database: str) -> None:
    """`run_resilience kill_points` in small: one armed start per point, each ends in the hook's SIGKILL at its
    point with the caught message where the point says (on disk or not, its reply read or not), and the final
    oracle finds nothing lost or duplicated."""
    from benchmarks.resilience.kill_points import QUICK_KILL_POINTS, run_kill_points, summarise_kill_points

    plan = replace(QUICK_KILL_POINTS, seed=3, database=any_database)
    new_database = _new_database(any_database)
    summary = summarise_kill_points(await run_kill_points(plan, tmp_path, lambda _: None, new_database))
    assert summary["violations"] == 0, summary["details"]
    points = summary["points"]
    assert [points[p]["killed"] for p in ("after_receive", "after_commit", "after_reply")] == [1, 1, 1]
    assert all(p["problems"] == p["misses"] == p["answered_lost"] == 0 for p in points.values())
    assert points["after_receive"]["on_disk"] <= 1 - points["after_receive"]["first_send"]
    assert points["after_commit"]["on_disk"] == 1 and points["after_commit"]["reply_read"] == 0
    assert points["after_commit"]["resent"] == 1 and points["after_reply"]["on_disk"] == 1
    assert summary["transactions"] > 0 and summary["lost_transactions"] == summary["duplicated_transactions"] == 0
    assert summary["stops_missing"] == summary["lost_readings"] == summary["duplicated_readings"] == 0
