"""Fuzzing the charger's side of OUR commands: every operator command of both versions, answered with mutated frames.

The station under test is a plain synchronous websocket client whose reader thread answers each CSMS CALL with the
frame the current example prescribes (:class:`FuzzAnswer`); the operator's side is the real HTTP API
(``POST /api/v1/stations/{id}/commands/{name}``). The checks (:meth:`AnswerStation.check`):

- a schema-valid CALLRESULT is a 200 whose ``response`` is what the charger sent;
- an unusable answer (non-object payload, wrong shape or message type, broken JSON, binary frame, unknown or
  garbled CALLERROR code) is a 502 ``station-bad-answer`` problem naming what was wrong, and a well-formed
  CALLERROR a 502 ``station-call-error``; a mutated payload is either of 200 or 502, never anything else;
- the answer is never waited for until the call timeout (the API client gives up long before it);
- nothing is left pending, and the session still serves: a Heartbeat sentinel is answered and whatever the CSMS
  sent back about our frame is at most one CALLERROR with a code of its version.

The error-log tripwire (tests) and the ERROR-line counter (run_fuzz) catch unhandled exceptions in the server.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from benchmarks.fuzzing import CODES, dumps, from_schema, mutated, open_booted, response_schema

__all__ = [
    "COMMAND_BODIES",
    "AnswerStation",
    "AnswerTally",
    "FuzzAnswer",
    "answer_frames",
    "minimal_answer",
]

# One valid request body per operator command route (and the variants that pick another action in 1.6).
COMMAND_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("remote-start", {"id_token": "APP-1", "evse_id": 1}),
    ("remote-stop", {"transaction_id": "17"}),
    ("reset", {"hard": True}),
    ("unlock-connector", {"evse_id": 1}),
    ("change-availability", {"operative": False, "evse_id": 1}),
    ("trigger-message", {"message": "StatusNotification", "evse_id": 1}),
    ("trigger-message", {"message": "SignChargePointCertificate"}),
    ("get-configuration", {"keys": ["HeartbeatInterval"]}),
    ("change-configuration", {"key": "HeartbeatInterval", "value": "60"}),
    ("get-variables", {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]}),
    ("set-variables", {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "60"}]}),
    ("get-base-report", {"request_id": 5}),
    ("clear-cache", {}),
    ("send-local-list", {"version": 3, "full": True, "entries": [{"id_token": "CARD-1", "status": "Accepted"}]}),
    ("get-local-list-version", {}),
    (
        "set-charging-profile",
        {
            "evse_id": 1,
            "profile": {
                "id": 7,
                "stack_level": 1,
                "purpose": "TxDefaultProfile",
                "kind": "Absolute",
                "schedule": {"unit": "A", "periods": [{"start_period": 0, "limit": 16.0}]},
            },
        },
    ),
    ("clear-charging-profile", {"profile_id": 7}),
    ("get-charging-profiles", {"request_id": 2, "purpose": "TxDefaultProfile"}),
    ("get-composite-schedule", {"evse_id": 1, "duration": 3600, "unit": "A"}),
    ("reserve-now", {"reservation_id": 11, "id_token": "CARD-1", "expiry": "2030-01-01T10:00:00Z", "evse_id": 1}),
    ("cancel-reservation", {"reservation_id": 11}),
    ("update-firmware", {"location": "https://fw.example/1.bin", "retrieve_at": "2030-01-01T00:00:00Z"}),
    (
        "update-firmware",
        {
            "location": "https://fw.example/1.bin",
            "retrieve_at": "2030-01-01T00:00:00Z",
            "signing_certificate": "CERT",
            "signature": "SIG",
        },
    ),
    ("get-log", {"location": "https://logs.example/up"}),
    ("get-log", {"location": "https://logs.example/up", "log_type": "SecurityLog"}),
    ("data-transfer", {"vendor_id": "acme", "message_id": "ping", "data": {"a": 1}}),
]

# Stands for the CALL's message id in an answer template (the id is only known once the CALL arrives).
_ID = "\u0000id\u0000"
_ID_JSON = json.dumps(_ID)


@dataclass(frozen=True)
class FuzzAnswer:
    """The frame a station sends back to one CSMS CALL.

    ``template`` is the frame's text with ``_ID_JSON`` where the message id goes. ``expect`` is what the API
    must say: "ok" (200), "bad" (502 station-bad-answer), "error" (502 station-call-error) or "either" (200 or
    a 502 problem: a mutated payload may still be valid).
    """

    template: str
    mutation: str
    expect: str
    binary: bool = False

    def frame(self, message_id: str) -> str | bytes:
        text = self.template.replace(_ID_JSON, json.dumps(message_id))
        return text.encode() if self.binary else text


def _minimal(node: dict[str, Any], root: dict[str, Any]) -> Any:
    if "$ref" in node:
        return _minimal(root["definitions"][node["$ref"].rsplit("/", 1)[-1]], root)
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties", {})
        return {key: _minimal(properties[key], root) for key in node.get("required", [])}
    if kind == "array":
        return [_minimal(node["items"], root) for _ in range(node.get("minItems", 0))]
    if kind == "string":
        if node.get("format") == "date-time":
            return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return "x"
    if kind in ("integer", "number"):
        return node.get("minimum", 0)
    if kind == "boolean":
        return True
    return {}


def minimal_answer(subprotocol: str, action: str) -> dict[str, Any]:
    """A schema-valid answer with only the required fields (first enum value: usually Accepted)."""
    schema = response_schema(subprotocol, action)
    answer: dict[str, Any] = _minimal(schema, schema)
    return answer


_NOT_OBJECTS: list[Any] = [[], [{}], 5, -1.5, "Accepted", "", None, True, [["status", "Accepted"]]]
_WRONG_TYPES: list[Any] = [0, 1, 5, 6, 99, -3, "3", None, True, False, [3], {"t": 3}]
_KNOWN_CODES = ["NotSupported", "GenericError", "InternalError", "NotImplemented", "FormatViolation", "SecurityError"]
_ODD_CODES: list[Any] = ["", "Bogus", "notsupported", "Not Supported", "X" * 5000, "\u0000", 5, None, {}, [], True]
_DESCRIPTIONS: list[Any] = ["why", "", 5, None, {}, ["a"], "d" * 60_000, "\u2028\u0000"]
_DETAILS: list[Any] = [{}, {"a": 1}, [], 5, "s", None, {"deep": [[[[[[]]]]]]}]


@st.composite
def answer_frames(draw: st.DrawFn, subprotocol: str, action: str) -> FuzzAnswer:
    """An answer to a CALL of ``action``: valid, with a mutated payload, or malformed in one of many ways."""
    payload = draw(from_schema(response_schema(subprotocol, action)))
    kind = draw(
        st.sampled_from(
            ["valid", "payload", "payload", "not-object", "shape", "type", "callerror", "garbled", "binary", "huge"]
        )
    )
    result = f"[3,{_ID_JSON},{dumps(payload)}]"
    if kind == "valid":
        return FuzzAnswer(result, kind, "ok")
    if kind == "payload":
        mutation, changed = draw(mutated(payload))
        return FuzzAnswer(f"[3,{_ID_JSON},{dumps(changed)}]", f"payload-{mutation}", "either")
    if kind == "not-object":
        value = draw(st.sampled_from(_NOT_OBJECTS))
        return FuzzAnswer(f"[3,{_ID_JSON},{json.dumps(value)}]", kind, "bad")
    if kind == "shape":
        shape = draw(st.sampled_from(["short", "long", "id-first", "object", "bare-id"]))
        text = {
            "short": f"[3,{_ID_JSON}]",
            "long": f"[3,{_ID_JSON},{dumps(payload)},{{}}]",
            "id-first": f"[{_ID_JSON},3,{dumps(payload)}]",
            "object": f'{{"type":3,"id":{_ID_JSON},"payload":{dumps(payload)}}}',
            "bare-id": _ID_JSON,
        }[shape]
        return FuzzAnswer(text, f"shape-{shape}", "bad")
    if kind == "type":
        type_id = draw(st.sampled_from([*_WRONG_TYPES, "call-short", "call"]))
        if type_id == "call-short":  # [2, id, payload]: the message type of a CALL on a result
            return FuzzAnswer(f"[2,{_ID_JSON},{dumps(payload)}]", kind, "bad")
        if type_id == "call":  # a well-formed CALL that reuses our id: answered, but not an answer
            return FuzzAnswer(f'[2,{_ID_JSON},"Heartbeat",{{}}]', f"{kind}-call", "bad")
        return FuzzAnswer(f"[{json.dumps(type_id)},{_ID_JSON},{dumps(payload)}]", kind, "bad")
    if kind == "callerror":
        code = draw(st.sampled_from([*_KNOWN_CODES, *_ODD_CODES]))
        description = draw(st.sampled_from(_DESCRIPTIONS))
        details = draw(st.sampled_from([*_DETAILS, "missing"]))
        parts = [4, _ID, code, description] + ([] if details == "missing" else [details])
        text = json.dumps(parts)
        known = isinstance(code, str) and code in _KNOWN_CODES
        return FuzzAnswer(text, "callerror-" + ("known" if known else "odd-code"), "error" if known else "bad")
    if kind == "garbled":
        # Any strict prefix of a JSON array is broken JSON; cut after the id so the frame still holds it.
        start = result.index(_ID_JSON) + len(_ID_JSON)
        cut = draw(st.integers(start, len(result) - 1))
        return FuzzAnswer(result[:cut], kind, "bad")
    if kind == "binary":
        return FuzzAnswer(result, kind, "bad", binary=True)
    # A big answer below the frame limit: an unknown member of 200 kB (refused by the schemas, which allow no
    # extra members) or a big value in a string field (which only an unbounded field can take).
    big = "y" * 200_000
    strings = [key for key, value in payload.items() if isinstance(value, str)]
    if draw(st.booleans()) or not strings:
        return FuzzAnswer(f"[3,{_ID_JSON},{dumps({**payload, 'huge': big})}]", "huge-member", "either")
    return FuzzAnswer(f"[3,{_ID_JSON},{dumps({**payload, strings[0]: big})}]", "huge-value", "either")


@dataclass
class AnswerTally:
    """What an answer fuzz run sent and what the API made of it."""

    examples: int = 0
    commands: set[tuple[str, str]] = field(default_factory=set)  # (version, action) covered
    outcomes: Counter[str] = field(default_factory=Counter)  # HTTP status / problem type
    mutations: Counter[str] = field(default_factory=Counter)


class AnswerStation:
    """One booted station answering CSMS CALLs with fuzzed frames, and an API client sending it commands."""

    def __init__(self, ws_url: str, api_url: str, headers: dict[str, str], subprotocol: str, identity: str) -> None:
        self.subprotocol = subprotocol
        self.identity = identity
        self.tally = AnswerTally()
        self._answer: tuple[str, FuzzAnswer] | None = None  # (action, answer) for the next CALL of that action
        self._lock = threading.Lock()
        self._replies: queue.Queue[Any] = queue.Queue()
        self._sentinels = 0
        self._ws_url = ws_url
        self._stack = contextlib.ExitStack()
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.http = httpx.Client(base_url=api_url, headers=headers, timeout=20)
        self.connection = self._open()
        self._reader = threading.Thread(target=self._read, name=f"answers-{identity}", daemon=True)
        self._reader.start()

    def _open(self) -> ClientConnection:
        return open_booted(self._stack, self._ws_url, self.subprotocol)

    def close(self) -> None:
        self._stack.close()
        self._reader.join(10)
        self.http.close()

    def _read(self) -> None:
        try:
            for data in self.connection:
                frame = json.loads(data)
                if isinstance(frame, list) and frame and frame[0] == 2:
                    self._on_call(frame[1], frame[2], frame[3])
                else:
                    self._replies.put(frame)
        except ConnectionClosed:
            pass

    def _on_call(self, message_id: str, action: str, payload: dict[str, Any]) -> None:
        self.received.append((action, payload))
        with self._lock:
            planned = self._answer
            if planned is not None and planned[0] == action:
                self._answer = None
        if planned is not None and planned[0] == action:
            self.connection.send(planned[1].frame(message_id))
        else:  # a call that is not under test (e.g. a profile sent at boot): a plain valid answer
            self.connection.send(json.dumps([3, message_id, minimal_answer(self.subprotocol, action)]))

    def action_of(self, route: str, body: dict[str, Any]) -> str | None:
        """The action ``route`` sends to this station's version, or None when the version has no such command."""
        response = self.http.post(f"/stations/{self.identity}/commands/{route}", json=body)
        if response.status_code == 422:
            return None
        assert response.status_code == 200, (route, response.text)
        action: str = response.json()["action"]
        return action

    def check(self, route: str, body: dict[str, Any], action: str, answer: FuzzAnswer) -> None:
        """Send the command, answer it with ``answer``, and apply the checks in the module docstring."""
        with self._lock:
            self._answer = (action, answer)
        response = self.http.post(f"/stations/{self.identity}/commands/{route}", json=body)
        with self._lock:
            unused, self._answer = self._answer, None
        assert unused is None, f"{route} did not send {action}"
        self.tally.examples += 1
        self.tally.commands.add((self.subprotocol, action))
        self.tally.mutations[answer.mutation] += 1
        described = f"{answer.mutation} answer {answer.template[:200]!r} to {action}"
        if response.status_code == 200:
            self.tally.outcomes["200"] += 1
            assert answer.expect in ("ok", "either"), f"{described}: 200 {response.text[:300]}"
            if answer.expect == "ok":
                assert response.json()["response"] == json.loads(answer.template.replace(_ID_JSON, '"x"'))[2]
        else:
            assert response.headers["content-type"].startswith("application/problem+json"), response.text[:300]
            problem = response.json()
            kind = problem["type"].rsplit("/", 1)[-1]
            self.tally.outcomes[f"{response.status_code} {kind}"] += 1
            expected = {
                "ok": set(),
                "bad": {"station-bad-answer"},
                "error": {"station-call-error"},
                "either": {"station-bad-answer"},
            }[answer.expect]
            assert response.status_code == 502 and kind in expected, f"{described}: {response.status_code} {problem}"
            assert action in problem["detail"] and len(problem["detail"]) < 2000, problem
        self._sentinel(described, answer.mutation == "type-call")

    def _sentinel(self, described: str, call_answered: bool) -> None:
        """The connection still serves: a Heartbeat is answered; the CSMS said at most one CALLERROR about us."""
        self._sentinels += 1
        sentinel = f"sentinel-{self._sentinels}"
        self.connection.send(f'[2,"{sentinel}","Heartbeat",{{}}]')
        said: list[Any] = []
        while True:
            reply = self._replies.get(timeout=20)
            if isinstance(reply, list) and len(reply) > 1 and reply[1] == sentinel:
                break
            said.append(reply)
        assert reply[0] == 3, f"sentinel after {described} got {reply}"
        assert len(said) <= 1, f"{described}: the CSMS sent {said}"
        for frame in said:
            if call_answered and frame[0] == 3:  # our CALL reusing the CSMS's id got its own answer
                continue
            assert frame[0] == 4 and frame[2] in CODES[self.subprotocol], f"{described}: the CSMS sent {frame}"
            assert frame[2] != "InternalError", f"{described}: {frame}"
