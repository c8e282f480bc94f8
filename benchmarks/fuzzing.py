"""Schema-driven OCPP-J fuzzing against a live central system.

Payloads come from the official JSON schemas that ship inside the ``ocpp`` package, turned into hypothesis
strategies here (``hypothesis-jsonschema`` 0.23.1, the latest release, fails on the hypothesis we pin; the
OCPP schemas use a dozen keywords, listed in :func:`from_schema`). Each generated payload is then mutated:
fields dropped, duplicated (the same key twice in the JSON text), retyped, given values outside their enum,
over-long strings, extra fields; frames are mutated too (message type, id, action, truncated or spliced text).

Every frame goes over a real websocket to a real server, followed by a Heartbeat sentinel. The checks:
a CALL gets exactly one CALLRESULT or one CALLERROR with the same id (or "-1"), whose code is one its OCPP
version defines and never InternalError; an unmutated payload of an action we handle gets a CALLRESULT; the
sentinel is answered, so the connection is still usable.
The server runs in a thread (:class:`ServerThread`) so hypothesis drives a plain synchronous client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import string
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

import ocpp
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from csms.config import Settings
from csms.protocol.dispatch import ADAPTERS
from csms.protocol.versions import OcppVersion
from csms.runtime.app import CentralSystem

__all__ = [
    "BOOT",
    "CODES",
    "SUBPROTOCOLS",
    "FuzzClient",
    "FuzzFrame",
    "ServerThread",
    "Tally",
    "actions",
    "call_frames",
    "dumps",
    "from_schema",
    "mutated",
    "open_booted",
    "raw_frames",
    "request_schema",
    "response_schema",
]

SUBPROTOCOLS = ("ocpp1.6", "ocpp2.0.1")
BOOT: dict[str, dict[str, Any]] = {
    "ocpp1.6": {"chargePointVendor": "Fuzz", "chargePointModel": "F1"},
    "ocpp2.0.1": {"reason": "PowerUp", "chargingStation": {"model": "F1", "vendorName": "Fuzz"}},
}
# The CALLERROR codes each version defines (1.6 keeps its historic spellings, errata 5.2).
CODES: dict[str, frozenset[str]] = {
    "ocpp1.6": frozenset(
        "NotImplemented NotSupported InternalError ProtocolError SecurityError FormationViolation "
        "PropertyConstraintViolation OccurenceConstraintViolation TypeConstraintViolation GenericError".split()
    ),
    "ocpp2.0.1": frozenset(
        "FormatViolation GenericError InternalError MessageTypeNotSupported NotImplemented NotSupported "
        "OccurrenceConstraintViolation PropertyConstraintViolation ProtocolError RpcFrameworkError "
        "SecurityError TypeConstraintViolation".split()
    ),
}
_SCHEMAS = Path(ocpp.__file__).parent
_INT64 = 2**63 - 1
_T = TypeVar("_T")


def _schema_dir(subprotocol: str) -> Path:
    return _SCHEMAS / ("v16" if subprotocol == "ocpp1.6" else "v201") / "schemas"


def actions(subprotocol: str) -> list[str]:
    """Every action of the version that has a request schema: charger- and CSMS-initiated alike."""
    suffix = ".json" if subprotocol == "ocpp1.6" else "Request.json"
    names = [path.name.removesuffix(suffix) for path in _schema_dir(subprotocol).glob(f"*{suffix}")]
    return sorted(name for name in names if not name.endswith("Response"))


@cache
def request_schema(subprotocol: str, action: str) -> dict[str, Any]:
    name = f"{action}.json" if subprotocol == "ocpp1.6" else f"{action}Request.json"
    schema: dict[str, Any] = json.loads((_schema_dir(subprotocol) / name).read_text(encoding="utf-8"))
    return schema


@cache
def response_schema(subprotocol: str, action: str) -> dict[str, Any]:
    name = f"{action}Response.json"
    schema: dict[str, Any] = json.loads((_schema_dir(subprotocol) / name).read_text(encoding="utf-8"))
    return schema


# -- schema -> strategy -------------------------------------------------------------------------------------------

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _date_times() -> st.SearchStrategy[str]:
    offsets = st.sampled_from(["Z", "+00:00", "+02:00", "-05:30"])
    seconds = st.integers(min_value=0, max_value=60 * 365 * 86400)
    return st.builds(
        lambda s, ms, offset: (
            (_EPOCH + timedelta(seconds=s, milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S")
            + (f".{ms:03d}" if ms else "")
            + offset
        ),
        seconds,
        st.integers(min_value=0, max_value=999),
        offsets,
    )


# Strategies built once per schema node: a fresh tree per draw made hypothesis recompute each strategy's
# emptiness on every draw. Each entry keeps its schema nodes alive, so their ids cannot be reused.
_STRATEGIES: dict[tuple[int, int], tuple[dict[str, Any], dict[str, Any], st.SearchStrategy[Any]]] = {}


def from_schema(node: dict[str, Any], root: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values valid for ``node``: type, enum, $ref, properties/required/additionalProperties, items,
    minItems/maxItems, maxLength, minimum/maximum, multipleOf and format date-time. Unbounded integers get the
    signed 64-bit range (as csms.protocol.schemas does); strings and lists are kept short."""
    root = root if root is not None else node
    key = (id(root), id(node))
    if key not in _STRATEGIES:
        _STRATEGIES[key] = (root, node, _strategy(node, root))
    return _STRATEGIES[key][2]


def _strategy(node: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return st.deferred(lambda: from_schema(root["definitions"][name], root))
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        properties: dict[str, Any] = node.get("properties", {})
        required = set(node.get("required", ()))
        optional = sorted(set(properties) - required)
        return st.builds(
            lambda base, extra: {**base, **extra},
            st.fixed_dictionaries({name: from_schema(properties[name], root) for name in sorted(required)}),
            st.fixed_dictionaries({}, optional={name: from_schema(properties[name], root) for name in optional}),
        )
    if kind == "array":
        items = node.get("items", {})
        low = node.get("minItems", 0)
        high = min(node.get("maxItems", low + 3), low + 3)
        return st.lists(from_schema(items, root), min_size=low, max_size=high)
    if kind == "string":
        if node.get("format") == "date-time":
            return _date_times()
        return st.text(max_size=min(node.get("maxLength", 40), 40))
    if kind == "integer":
        return st.integers(node.get("minimum", -_INT64 - 1), node.get("maximum", _INT64))
    if kind == "number":
        low, high = node.get("minimum"), node.get("maximum")
        if "multipleOf" in node:
            step = node["multipleOf"]
            return (
                st.integers(-1000, 1000)
                .map(lambda n: round(n * step, 6))
                .filter(lambda x: (low is None or x >= low) and (high is None or x <= high))
            )
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    return st.none() | st.integers() | st.text(max_size=10)  # free-form data (DataTransfer, customData)


# -- mutations ------------------------------------------------------------------------------------------------

_ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**31,
    2**63,
    2**64 - 1,
    -(2**63) - 1,
    1.5,
    -0.0,
    1e308,
    "",
    "0",
    "x" * 10_000,
    "\u0000\ud7ff\U0001f600",
    "2025-02-29T25:61:61Z",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    [],
    [[[[[[]]]]]],
    {},
    {"a": {"b": {"c": None}}},
]


@dataclass(frozen=True)
class _Duplicated:
    """A JSON object serialized with ``key`` twice: first ``first``, then the object's own value."""

    value: dict[str, Any]
    key: str
    first: Any


def dumps(value: Any) -> str:
    if isinstance(value, _Duplicated):
        parts = [f"{json.dumps(value.key)}:{dumps(value.first)}"]
        parts += [f"{json.dumps(k)}:{dumps(v)}" for k, v in value.value.items()]
        return "{" + ",".join(parts) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(item) for item in value) + "]"
    return json.dumps(value)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _replace(value: Any, path: tuple[Any, ...], new: Callable[[Any], Any]) -> Any:
    if not path:
        return new(value)
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]


class Chooser(Protocol):
    """Where a mutation's random choices come from: hypothesis (``DrawChooser``, shrinkable) or a seeded
    ``random.Random`` (``RandomChooser``, for bulk runs). The mutations below are written once against this."""

    def choice(self, options: Sequence[_T]) -> _T: ...

    def integer(self, low: int, high: int) -> int: ...

    def text(self, min_size: int, max_size: int) -> str: ...

    def message_id(self) -> str: ...


class DrawChooser:
    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw

    def choice(self, options: Sequence[_T]) -> _T:
        return self._draw(st.sampled_from(options))

    def integer(self, low: int, high: int) -> int:
        return self._draw(st.integers(low, high))

    def text(self, min_size: int, max_size: int) -> str:
        return self._draw(st.text(min_size=min_size, max_size=max_size))

    def message_id(self) -> str:
        return self._draw(st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), min_size=1, max_size=36))


# Characters a seeded text draws from: mostly plain, some that trouble parsers, databases and terminals.
_PLAIN = string.ascii_letters + string.digits + " -_.:"
_ODD_CHARS = '\u0000\u0001\t\n"\\/\u00e9\u00ff\u0130\u2028\u2029\ufeff\ufffd\ud7ff\U0001f600\U0010ffff'
_ID_CHARS = "".join(chr(code) for code in range(32, 127))


class RandomChooser:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choice(self, options: Sequence[_T]) -> _T:
        return self._rng.choice(options)

    def integer(self, low: int, high: int) -> int:
        return self._rng.randint(low, high)

    def text(self, min_size: int, max_size: int) -> str:
        size = self._rng.randint(min_size, max_size)
        pool = _ODD_CHARS if self._rng.random() < 0.3 else _PLAIN
        return "".join(self._rng.choice(pool) for _ in range(size))

    def message_id(self) -> str:
        return "".join(self._rng.choice(_ID_CHARS) for _ in range(self._rng.randint(1, 36)))


MUTATIONS = ("drop", "duplicate", "retype", "enum", "oversize", "extra", "nothing")


def mutate(payload: Any, chooser: Chooser, kinds: Sequence[str] = MUTATIONS) -> tuple[str, Any]:
    """One mutation of ``payload`` at a random place; returns its name and the mutated value."""
    path = chooser.choice(list(_paths(payload)))
    kind = chooser.choice(kinds)

    def at_container(change: Callable[[Any], Any]) -> Any:
        return _replace(payload, path, lambda node: change(node) if isinstance(node, dict | list) else node)

    if kind == "drop":
        return kind, at_container(
            lambda node: (
                {k: v for i, (k, v) in enumerate(node.items()) if i != 0} if isinstance(node, dict) else node[1:]
            )
        )
    if kind == "duplicate":
        first = chooser.choice(_ODD_VALUES)
        return kind, at_container(
            lambda node: _Duplicated(node, next(iter(node)), first) if isinstance(node, dict) and node else node
        )
    if kind == "retype":
        odd = chooser.choice(_ODD_VALUES)
        return kind, _replace(payload, path, lambda _: odd)
    if kind == "enum":
        word = chooser.text(1, 30)
        return kind, _replace(payload, path, lambda node: word if isinstance(node, str) else node)
    if kind == "oversize":
        size = chooser.choice([21, 26, 37, 51, 256, 501, 2501, 60_000])
        return kind, _replace(payload, path, lambda node: "y" * size if isinstance(node, str) else node)
    if kind == "extra":
        name = chooser.text(1, 12)
        odd = chooser.choice(_ODD_VALUES)
        return kind, at_container(lambda node: {**node, name: odd} if isinstance(node, dict) else [*node, odd])
    return kind, payload


@st.composite
def mutated(draw: st.DrawFn, payload: Any) -> tuple[str, Any]:
    """One mutation of ``payload`` at a random place, drawn by hypothesis; returns its name and the mutated value."""
    return mutate(payload, DrawChooser(draw))


# -- frames ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzFrame:
    text: str
    message_id: str | None  # the id a reply may carry (besides "-1"); None when the frame has no readable id
    mutation: str  # what was done to it, for the tally and for failure reports


def call_frame(action: str, payload: Any, mutation: str, message_id: str) -> FuzzFrame:
    text = f"[2,{json.dumps(message_id)},{json.dumps(action)},{dumps(payload)}]"
    return FuzzFrame(text, message_id, mutation)


@st.composite
def call_frames(draw: st.DrawFn, subprotocol: str, action: str, mutate: bool = True) -> FuzzFrame:
    """A CALL of ``action`` with a schema-valid payload, mutated unless ``mutate`` is False."""
    payload = draw(from_schema(request_schema(subprotocol, action)))
    mutation, payload = draw(mutated(payload)) if mutate else ("valid", payload)
    return call_frame(action, payload, mutation, DrawChooser(draw).message_id())


@st.composite
def raw_frames(draw: st.DrawFn, subprotocol: str, action: str) -> FuzzFrame:
    """A frame mutated as text or as an OCPP-J array: type ids, ids, actions, truncation, splicing."""
    return raw_mutate(draw(call_frames(subprotocol, action, mutate=False)).text, DrawChooser(draw))


RAW_MUTATIONS = ("truncate", "splice", "type", "id", "action", "shape", "huge-number")


def raw_mutate(text: str, chooser: Chooser) -> FuzzFrame:
    """The valid CALL ``text`` mutated as text or as an OCPP-J array."""
    kind = chooser.choice(RAW_MUTATIONS)
    if kind == "truncate":
        cut = chooser.integer(0, max(0, len(text) - 1))
        return FuzzFrame(text[:cut], _id_in(text[:cut]), kind)
    if kind == "splice":
        at = chooser.integer(0, len(text))
        junk = chooser.choice(["}", "]", ",", '"', "\\", "\x00", "NaN", "Infinity", "{", "[", " ", "\u2028"])
        spliced = text[:at] + junk + text[at:]
        return FuzzFrame(spliced, _id_in(spliced), kind)
    if kind == "huge-number":
        digits = chooser.choice([20, 400, 5000])
        # A number Python's int cannot even print (sys.get_int_max_str_digits) as an extra first member.
        huge = text.replace(",{", ',{"n":' + "9" * digits + ",", 1)
        return FuzzFrame(huge, _id_in(huge), kind)
    frame = json.loads(text)
    if kind == "type":
        frame[0] = chooser.choice([0, 1, 3, 4, 5, 6, 7, 99, -2, "2", None, 2.0, True, [2]])
    elif kind == "id":
        frame[1] = chooser.choice([None, 7, "", "z" * 37, ["id"], {"id": 1}, "\u00e9\u00e8", "-1"])
    elif kind == "action":
        frame[2] = chooser.choice([None, 3, "", "heartbeat", "TransactionEvent", "StartTransaction", "../x", "A" * 300])
    else:
        shape = chooser.choice(["short", "long", "payload-null", "payload-list", "object"])
        frame = {
            "short": frame[:3],
            "long": [*frame, {}],
            "payload-null": [*frame[:3], None],
            "payload-list": [*frame[:3], []],
            "object": {"frame": frame},
        }[shape]
    text = json.dumps(frame)
    return FuzzFrame(text, _id_in(text), kind)


def _id_in(text: str) -> str | None:
    """The message id a reply to ``text`` may carry: the frame's own, when it parses and has a string id."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    return frame[1] if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str) else None


# -- the client and its checks -----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What a fuzz run sent and got back."""

    examples: int = 0
    results: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    silent: int = 0  # frames answered with nothing (1.6: unknown message types)
    actions: set[tuple[str, str]] = field(default_factory=set)
    mutations: Counter[str] = field(default_factory=Counter)
    mutated: Counter[tuple[str, str]] = field(default_factory=Counter)  # frames other than valid CALLs, per action


def open_booted(stack: contextlib.ExitStack, url: str, subprotocol: str) -> ClientConnection:
    """A station connection (closed with ``stack``) whose BootNotification was accepted."""
    # No keepalive pings: websockets draws their payload from `random`, and hypothesis warns (an error under
    # pytest) when the global random state moves while it draws an example.
    opening = connect(url, subprotocols=[subprotocol], open_timeout=10, max_size=None, ping_interval=None)  # type: ignore[list-item]
    connection = stack.enter_context(opening)
    connection.send(json.dumps([2, "boot", "BootNotification", BOOT[subprotocol]]))
    reply = json.loads(connection.recv(timeout=10))
    assert reply[0] == 3 and reply[2]["status"] == "Accepted", reply
    return connection


class FuzzClient:
    """One station connection that sends fuzz frames, each followed by a Heartbeat sentinel, and checks replies."""

    def __init__(self, url: str, subprotocol: str, tally: Tally | None = None) -> None:
        self.subprotocol = subprotocol
        self.handled = frozenset(ADAPTERS[OcppVersion(subprotocol.removeprefix("ocpp"))].handlers)
        self.tally = tally if tally is not None else Tally()
        self._url = url
        self._sentinels = 0
        self._stack = contextlib.ExitStack()
        self.connection = self._open()

    def _open(self) -> ClientConnection:
        return open_booted(self._stack, self._url, self.subprotocol)

    def close(self) -> None:
        self._stack.close()

    def check(self, action: str, frame: FuzzFrame) -> None:
        """Send ``frame`` and the sentinel; fail unless the answers follow the rules in the module docstring."""
        self.check_batch(action, [frame])

    def check_batch(self, action: str, frames: Sequence[FuzzFrame]) -> None:
        """Send each frame followed by its own sentinel, all before reading, then check each frame's answers.

        The server answers a connection's frames in order, one at a time (csms.runtime.session), so what comes
        before a sentinel's answer is the answer to the frame just before that sentinel: the checks are the same
        as one frame at a time, without a round trip per frame.
        """
        sentinels = []
        for frame in frames:
            self._sentinels += 1
            sentinels.append(f"sentinel-{self._sentinels}")
            self.connection.send(frame.text)
            self.connection.send(f'[2,"{sentinels[-1]}","Heartbeat",{{}}]')
        for frame, sentinel in zip(frames, sentinels, strict=True):
            self._check_answers(action, frame, sentinel)

    def _check_answers(self, action: str, frame: FuzzFrame, sentinel: str) -> None:
        replies: list[Any] = []
        while True:
            reply = json.loads(self.connection.recv(timeout=30))
            if reply[0] == 2:  # a CSMS call (e.g. a profile after boot): refuse it, it is not under test
                self.connection.send(json.dumps([4, reply[1], "NotSupported", "fuzz client", {}]))
                continue
            if reply[1] == sentinel:
                break
            replies.append(reply)
        assert reply[0] == 3, f"the sentinel Heartbeat after {frame} got {reply}"
        assert len(replies) <= 1, f"{frame} got {len(replies)} replies: {replies}"
        self.tally.examples += 1
        self.tally.actions.add((self.subprotocol, action))
        self.tally.mutations[frame.mutation] += 1
        if frame.mutation != "valid":
            self.tally.mutated[(self.subprotocol, action)] += 1
        if not replies:
            self.tally.silent += 1
            assert frame.message_id is None or not _is_call(frame.text), f"no reply to the CALL {frame}"
            return
        (answer,) = replies
        assert isinstance(answer, list) and answer[0] in (3, 4), answer
        assert answer[1] in (frame.message_id, "-1"), f"reply id {answer[1]!r} for {frame}"
        if answer[0] == 3:
            assert frame.message_id is not None and answer[1] == frame.message_id
            assert isinstance(answer[2], dict)
            self.tally.results += 1
            return
        # A schema-valid payload of an action we handle is answered with a result (its times are in range).
        assert frame.mutation != "valid" or action not in self.handled, f"valid {frame} refused: {answer}"
        code = answer[2]
        assert code in CODES[self.subprotocol], f"{code} is not an OCPP {self.subprotocol} error code ({frame})"
        assert code != "InternalError", f"InternalError for {frame}: {answer}"
        assert isinstance(answer[3], str) and len(answer[3]) <= 255 and answer[4] == {}
        self.tally.errors[code] += 1


def _is_call(text: str) -> bool:
    try:
        frame = json.loads(text)
    except ValueError:
        return False
    return isinstance(frame, list) and len(frame) == 4 and frame[0] == 2 and isinstance(frame[2], str)


# -- the server ----------------------------------------------------------------------------------------------------


class ServerThread:
    """A real CentralSystem on its own event loop in a background thread, for synchronous fuzz clients."""

    def __init__(self, settings: Settings) -> None:
        self.system = CentralSystem(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="csms-fuzz", daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.system.start(), self._loop).result(60)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.system.stop(), self._loop).result(60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(60)
            self._loop.close()

    def url(self, identity: str) -> str:
        return f"ws://127.0.0.1:{self.system.ocpp_port}/ocpp/{identity}"
