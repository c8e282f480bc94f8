"""Chargers answering OUR commands badly: every malformed answer ends the command at once with a clear 502.

The known bug this guards: a CALLRESULT whose payload is not an object (``[3, id, []]``, ``[3, id, 5]``) left
the command waiting for its full call timeout (504). Each test here runs with a call timeout far beyond the HTTP
client's, so only an answer resolved on arrival lets a request finish. The hypothesis test fuzzes the answers to
every operator command of both versions (engine: benchmarks/fuzz_answers.py, also run by benchmarks/run_fuzz.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from benchmarks.fuzz_answers import COMMAND_BODIES, AnswerStation, FuzzAnswer, answer_frames  # noqa: E402
from benchmarks.fuzzing import SUBPROTOCOLS, ServerThread  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.hostile.attack import booted, running, wait_until  # noqa: E402
from tests.http_api import ADMIN_HEADERS, admin_client  # noqa: E402
from tests.ocpp_client import RawClient  # noqa: E402

pytestmark = pytest.mark.timeout(300)

# Far beyond the API client's 20 s: a command that waits for its timeout fails the test instead of passing late.
CALL_TIMEOUT = 300


def _problem(response: Any) -> tuple[str, str]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    return body["type"].rsplit("/", 1)[-1], body["detail"]


async def serves_after(station: RawClient) -> None:
    """The station's next CALL is answered; before it, at most one CALLERROR about the bad answer (the CSMS's
    reply to a malformed frame: RpcFrameworkError, ProtocolError on 1.6, or none for unknown message types)."""
    await station.send_raw(json.dumps([2, "after-1", "Heartbeat", {}]))
    said = []
    while (reply := await station.next_reply())[1] != "after-1":
        said.append(reply)
    assert reply[0] == 3, reply
    assert len(said) <= 1 and all(f[0] == 4 for f in said), said


def _nested(levels: int) -> dict[str, Any]:
    """Vendor data nested ``levels`` deep: valid JSON, deeper than the CSMS stores."""
    data: dict[str, Any] = {"vendorId": "acme"}
    for _ in range(levels):
        data = {"vendorId": "acme", "inner": data}
    return data


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        ([3, []], "malformed CALLRESULT"),
        ([3, 5], "malformed CALLRESULT"),
        ([3, None], "malformed CALLRESULT"),
        ([3], "malformed CALLRESULT"),
        ([3, {"status": 5}], "breaks the Reset schema"),
        ([3, {}], "breaks the Reset schema"),
        ([3, {"status": "Accepted", "extra": 1}], "breaks the Reset schema"),
        ([4, "Bogus", "no", {}], "unknown error code 'Bogus'"),
        ([4, 17, "no", {}], "malformed CALLRESULT or CALLERROR"),
        ([7, {"status": "Accepted"}], "message type 7"),
        ([3, {"status": "Accepted", "customData": _nested(100)}], "nested deeper than 64 levels"),
    ],
)
async def test_malformed_answer_fails_the_command_at_once_with_a_502(
    tmp_path: Path, subprotocol: str, answer: list[Any], named: str
) -> None:
    """A non-object, schema-breaking or garbled answer is a 502 station-bad-answer naming the fault, not a 504."""
    plan = {"answer": answer}

    def answerer(action: str, payload: dict[str, Any]) -> list[Any] | dict[str, Any]:
        return plan["answer"] if action == "Reset" else {"status": "Accepted"}

    async with running(make_settings(tmp_path, ocpp={"call_timeout": CALL_TIMEOUT})) as system:
        station = await booted(system, "BAD-1", subprotocol, answer=answerer)
        session = system.registry.get("BAD-1")
        assert session is not None
        async with admin_client(system.api_port, timeout=20) as http:
            response = await http.post("/stations/BAD-1/commands/reset", json={})
            assert response.status_code == 502, response.text
            kind, detail = _problem(response)
            assert kind == "station-bad-answer"
            assert "unusable answer to Reset" in detail and named in detail, detail
            assert session.pending_call is None
            # The same session keeps serving: its own CALLs, and the next command once it answers properly.
            await serves_after(station)
            plan["answer"] = {"status": "Accepted"}  # type: ignore[assignment]
            good = await http.post("/stations/BAD-1/commands/reset", json={})
            assert good.status_code == 200, good.text
            events = (await http.get("/stations/BAD-1/events", params={"limit": 100})).json()["items"]
        assert system.registry.get("BAD-1") is session
        # The failure is in the command audit trail with what was wrong.
        assert any(e["action"] == "Command.Reset" and named in json.dumps(e["payload"]) for e in events), events
        await station.close()


async def test_well_formed_callerror_stays_a_station_call_error(tmp_path: Path, subprotocol: str) -> None:
    """A CALLERROR with a known code (in either version's spelling) is reported as the charger's own error; a
    description of the wrong type is tolerated, a huge one cut to 255 characters (found by the answer fuzzer)."""
    plan: dict[str, list[Any]] = {"answer": [4, "FormatViolation", 5, "not-an-object"]}
    async with running(make_settings(tmp_path, ocpp={"call_timeout": CALL_TIMEOUT})) as system:
        station = await booted(system, "ERR-1", subprotocol, answer=lambda action, payload: plan["answer"])
        async with admin_client(system.api_port, timeout=20) as http:
            response = await http.post("/stations/ERR-1/commands/reset", json={})
            assert response.status_code == 502, response.text
            assert _problem(response)[0] == "station-call-error"
            assert response.json()["ocpp_error_code"] == "FormatViolation"
            assert response.json()["ocpp_error_description"] == ""
            await serves_after(station)
            plan["answer"] = [4, "NotSupported", "d" * 60_000, {}]
            response = await http.post("/stations/ERR-1/commands/reset", json={})
            events = (await http.get("/stations/ERR-1/events", params={"limit": 100})).json()["items"]
        assert response.status_code == 502, response.text
        assert response.json()["ocpp_error_description"] == "d" * 252 + "..."
        assert len(response.json()["detail"]) < 400
        assert all(len(json.dumps(e["payload"])) < 1000 for e in events if e["action"] == "Command.Reset"), events
        await serves_after(station)
        await station.close()


async def test_unparseable_answer_carrying_our_id_fails_the_command_at_once(tmp_path: Path, subprotocol: str) -> None:
    """Broken JSON has no readable message id, but one that holds our CALL's id is taken as its (bad) answer."""
    async with running(make_settings(tmp_path, ocpp={"call_timeout": CALL_TIMEOUT})) as system:
        station = await booted(system, "JUNK-1", subprotocol, answer=lambda action, payload: None)
        session = system.registry.get("JUNK-1")
        assert session is not None
        async with admin_client(system.api_port, timeout=20) as http:
            request = asyncio.create_task(http.post("/stations/JUNK-1/commands/reset", json={}))
            assert await wait_until(lambda: session.pending_call is not None, 10)
            message_id = session.pending_call
            # First a broken frame that does not mention the call: it must not end it.
            await station.send_raw('[3,"someone-else",{"status":')
            assert (await station.next_reply())[:2] == [4, "-1"]
            assert session.pending_call == message_id
            await station.send_raw(f'[3,"{message_id}",{{"status":"Acc')
            response = await request
        assert response.status_code == 502, response.text
        kind, detail = _problem(response)
        assert kind == "station-bad-answer" and "not valid JSON" in detail
        await serves_after(station)
        await station.close()


async def test_answer_over_the_frame_limit_is_a_clear_502(tmp_path: Path, subprotocol: str) -> None:
    """An answer larger than the frame limit closes the connection (1009, as specified); the command says why."""
    huge = {"status": "Accepted", "pad": "y" * 20_000}
    settings = make_settings(tmp_path, ocpp={"call_timeout": CALL_TIMEOUT, "max_frame_bytes": 4096})
    async with running(settings) as system:
        station = await booted(system, "HUGE-1", subprotocol, answer=lambda action, payload: huge)
        async with admin_client(system.api_port, timeout=20) as http:
            response = await http.post("/stations/HUGE-1/commands/reset", json={})
        assert response.status_code == 502, response.text
        kind, detail = _problem(response)
        assert kind == "station-bad-answer" and "1009" in detail and "4096" in detail, detail
        assert await wait_until(lambda: system.registry.get("HUGE-1") is None, 10)
        await station.close()


# -- hypothesis over every operator command of both versions -----------------------------------------------------


@pytest.fixture(scope="module")
def stations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, AnswerStation]]:
    """One real server and one booted answer-fuzzing station per OCPP version."""
    config = make_settings(tmp_path_factory.mktemp("answers"), ocpp={"ping_interval": None, "call_timeout": 300})
    with ServerThread(config) as server:
        api = f"http://127.0.0.1:{server.system.api_port}/api/v1"
        connected = {
            subprotocol: AnswerStation(
                server.url(f"ANS-{subprotocol}"), api, ADMIN_HEADERS, subprotocol, f"ANS-{subprotocol}"
            )
            for subprotocol in SUBPROTOCOLS
        }
        yield connected
        for station in connected.values():
            station.close()


CASES = [(subprotocol, index) for subprotocol in SUBPROTOCOLS for index in range(len(COMMAND_BODIES))]


@pytest.mark.parametrize(("subprotocol", "index"), CASES, ids=[f"{s}-{COMMAND_BODIES[i][0]}-{i}" for s, i in CASES])
def test_fuzzed_answers_to_every_command_get_a_prompt_clear_outcome(
    stations: dict[str, AnswerStation], subprotocol: str, index: int
) -> None:
    """Valid, mutated and malformed answers to one command: 200 or a 502 problem at once; the session serves on."""
    station = stations[subprotocol]
    route, body = COMMAND_BODIES[index]
    action = station.action_of(route, body)
    if action is None:
        pytest.skip(f"{route} {body} has no {subprotocol} action")
    before = station.tally.examples

    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(answer=answer_frames(subprotocol, action))
    def run(answer: FuzzAnswer) -> None:
        station.check(route, body, action, answer)

    run()
    assert station.tally.examples - before >= 12
