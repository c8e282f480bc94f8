"""CSMS -> station calls against stations that stay silent, answer late, vanish, or were never there."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from csms.runtime.app import CentralSystem
from tests.conftest import make_settings
from tests.hostile.attack import assert_serves, booted, deafened, running, wait_until
from tests.http_api import admin_client

pytestmark = pytest.mark.timeout(60)


class Answers:
    """The test station's behaviour for CSMS calls: silent until told to accept."""

    def __init__(self) -> None:
        self.accept = False

    def __call__(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        return {"status": "Accepted"} if self.accept else None


def _problem_type(response: Any) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    kind: str = response.json()["type"]
    return kind.rsplit("/", 1)[-1]


async def test_call_to_silent_station_times_out_with_nothing_pending(tmp_path: Path, subprotocol: str) -> None:
    """A silent station's command times out (504), leaves no pending call, and a late answer is dropped."""
    async with running(make_settings(tmp_path, ocpp={"call_timeout": 0.5})) as system:
        answers = Answers()
        station = await booted(system, "SILENT-1", subprotocol, answer=answers)
        session = system.registry.get("SILENT-1")
        assert session is not None
        async with admin_client(system.api_port) as http:
            late_ids = []
            for _ in range(2):  # the second call is not stuck behind the first
                request = asyncio.create_task(http.post("/stations/SILENT-1/commands/reset", json={}))
                assert await wait_until(lambda: session.pending_call is not None, 10)
                late_ids.append(session.pending_call)
                response = await request
                assert response.status_code == 504, response.text
                assert _problem_type(response) == "station-timeout"
                assert session.pending_call is None
            assert [call[0] for call in station.received_calls] == ["Reset", "Reset"]
            # The station answers both calls late: nothing waits for them any more, so they are dropped.
            for late_id in late_ids:
                await station.send_raw(json.dumps([3, late_id, {"status": "Accepted"}]))
            await assert_serves(station)
            assert session.pending_call is None
            # Once the station answers, the next command goes through on the same session.
            answers.accept = True
            response = await http.post("/stations/SILENT-1/commands/reset", json={})
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "Accepted"
            assert session.pending_call is None
        await station.close()


async def test_command_to_offline_station_is_a_409_problem(tmp_path: Path, subprotocol: str) -> None:
    """A command to a station that never connected, or has gone, is answered 409 station-offline at once."""
    async with running(make_settings(tmp_path)) as system:
        station = await booted(system, "GONE-1", subprotocol)
        await station.close()
        assert await wait_until(lambda: system.registry.get("GONE-1") is None, 10)
        async with admin_client(system.api_port) as http:
            for identity in ["GONE-1", "NEVER-1"]:
                response = await http.post(f"/stations/{identity}/commands/reset", json={})
                assert response.status_code == 409, response.text
                assert _problem_type(response) == "station-offline"
                assert identity in response.json()["detail"]


async def test_station_vanishing_mid_call_fails_the_command_at_once(tmp_path: Path, subprotocol: str) -> None:
    """When the connection drops while a command waits for its answer, the command fails 409, not at the timeout."""
    # A call timeout far beyond the HTTP client's: only an immediate failure lets the request finish in time.
    async with running(make_settings(tmp_path, ocpp={"call_timeout": 300})) as system:
        station = await booted(system, "VANISH-1", subprotocol, answer=lambda action, payload: None)
        session = system.registry.get("VANISH-1")
        assert session is not None
        async with admin_client(system.api_port, timeout=20) as http:
            request = asyncio.create_task(http.post("/stations/VANISH-1/commands/reset", json={}))
            assert await wait_until(lambda: session.pending_call is not None, 10)
            await station.close()
            response = await request
        assert response.status_code == 409, response.text
        assert _problem_type(response) == "station-offline"
        assert session.pending_call is None


async def test_call_to_station_that_stopped_reading_times_out(tmp_path: Path, subprotocol: str) -> None:
    """A command whose CALL cannot even be written (the station stopped reading) ends at the call timeout (504)."""
    # The write deadline is far away: only the call timeout, which covers the write, can end the request in time.
    settings = make_settings(tmp_path, ocpp={"call_timeout": 0.5, "send_timeout": 300, "ping_interval": None})
    async with running(settings) as system:
        deaf = await deafened(system, "DEAF-2", subprotocol)
        session = system.registry.get("DEAF-2")
        assert session is not None
        async with admin_client(system.api_port, timeout=20) as http:
            response = await http.post("/stations/DEAF-2/commands/reset", json={})
        assert response.status_code == 504, response.text
        assert _problem_type(response) == "station-timeout"
        assert session.pending_call is None
        deaf.transport.abort()


@pytest.mark.parametrize("transaction_id", ["abc", "\u00b2", "\u0663", "9" * 5000, "-1"])
async def test_remote_stop_with_a_transaction_id_1_6_cannot_carry_is_a_422(
    csms: CentralSystem, transaction_id: str
) -> None:
    """A 1.6 RemoteStop whose id is not a plain integer (letters, Unicode digits, 5,000 digits) is a 422 problem."""
    station = await booted(csms, "STOP-1", "ocpp1.6")
    async with admin_client(csms.api_port) as http:
        response = await http.post("/stations/STOP-1/commands/remote-stop", json={"transaction_id": transaction_id})
        assert response.status_code == 422, response.text
        assert _problem_type(response) == "invalid-request"
        good = await http.post("/stations/STOP-1/commands/remote-stop", json={"transaction_id": "17"})
        assert good.status_code == 200, good.text
    assert [call for call in station.received_calls if call[0] == "RemoteStopTransaction"] == [
        ("RemoteStopTransaction", {"transactionId": 17})
    ]
    await station.close()
