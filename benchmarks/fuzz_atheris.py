"""Coverage-guided (atheris / libFuzzer) fuzzing of what a charger's bytes reach first, in-process, no server.

One input is one websocket frame as the session sees it, prefixed by one byte that picks the OCPP version (odd:
1.6, even: 2.0.1; the seeds use the readable '1' and '2'). :func:`check_frame` runs it through the code a live
session runs before anything is stored:

- a frame that is not UTF-8 is a binary frame (``binary_frame_error``), otherwise ``parse_frame``;
- a CALL of an action we handle: ``validate_request`` (the version's JSON schema), then the adapter's handler,
  which turns the payload into domain values (``StationInfo``, ``ConnectorState``, ``TransactionStart`` with its
  ``MeterSample``s, ...) and hands them to the service. The service here is :class:`ConversionDone`'s recorder:
  its first method call ends the handler, so what is exercised is exactly the adapter's pure conversion;
- a CALLRESULT whose message id starts with a command's action (``"GetVariables:1"``; the session knows the
  action from its pending CALL, the harness from the id) is checked against that response schema;
- a CALLERROR becomes the ``StationCallError`` an operator would see.

The oracle: only the errors the session maps to a CALLERROR or a refused answer may escape (``FrameError``,
``SchemaViolation``, ``CallRejected``), and the recorder's ``ConversionDone``. Anything else (a KeyError,
ValueError, TypeError, OverflowError, ... out of an adapter) is a finding: live, it would be an InternalError.
What a handler hands the service is checked too (:func:`_check_values`): aware UTC times within the range
``parse_time`` allows, finite floats, integers within int64.

    python -m benchmarks.fuzz_atheris                        # 3 minutes from the committed corpus
    python -m benchmarks.fuzz_atheris -runs=100000           # any libFuzzer flag is passed on
    python -m benchmarks.fuzz_atheris --replay DIR_OR_FILE   # no atheris needed: run inputs through the oracle
    python -m benchmarks.fuzz_atheris --make-seeds           # rewrite the seed-* files and the dictionary

New inputs go to a scratch corpus (``build/atheris-corpus``); ``-merge=1 CORPUS build/atheris-corpus`` keeps those
that add coverage. tests/hostile/test_hostile_atheris.py replays the committed corpus through the same oracle.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import warnings
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import orjson
from ocpp.v16.enums import Action as ActionV16
from ocpp.v201.enums import Action as ActionV201

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "benchmarks" / "fuzz_corpus" / "atheris"
DICTIONARY = ROOT / "benchmarks" / "fuzz_corpus" / "atheris.dict"
SCRATCH = ROOT / "build" / "atheris-corpus"
DEFAULT_SECONDS = 180

__all__ = ["CORPUS", "ConversionDone", "Outcome", "check_frame", "corpus_files", "main"]


class ConversionDone(Exception):
    """Raised by the recording service on its first call: the adapter finished turning the payload into values."""

    def __init__(self, method: str, args: tuple[Any, ...]) -> None:
        super().__init__(method)
        self.method = method
        self.args = args


class _RecordingService:
    """Stands in for ChargerService: every method ends the handler with what it was given."""

    def __getattr__(self, method: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        async def record(*args: Any, **kwargs: Any) -> Any:
            raise ConversionDone(method, args)

        return record


Outcome = str  # "frame-error", "binary-frame", "rejected", "converted", "answer-ok", "answer-refused", ...


def _imports() -> dict[str, Any]:
    """The modules under test, imported late so atheris can instrument them first."""
    from csms.domain.stations import StationId
    from csms.protocol import dispatch, errors, framing, schemas
    from csms.protocol.common import CallContext
    from csms.protocol.versions import OcppVersion

    return {
        "StationId": StationId,
        "dispatch": dispatch,
        "errors": errors,
        "framing": framing,
        "schemas": schemas,
        "CallContext": CallContext,
        "OcppVersion": OcppVersion,
    }


_M: dict[str, Any] = {}
_KNOWN = {"1": {a.value for a in ActionV16}, "2": {a.value for a in ActionV201}}
_NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def check_frame(data: bytes) -> Outcome:
    """Run one input through parsing, validation and conversion; raise whatever the oracle forbids."""
    if not _M:
        _M.update(_imports())
    if not data:
        return "empty"
    framing, schemas, errors = _M["framing"], _M["schemas"], _M["errors"]
    version = _M["OcppVersion"].V16 if data[0] & 1 else _M["OcppVersion"].V201
    raw = data[1:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        reply = framing.binary_frame_error(raw)
        framing.encode_call_error(version, reply.message_id, reply.code, reply.description)
        return "binary-frame"
    try:
        message = framing.parse_frame(version, text)
    except framing.FrameError as exc:
        framing.encode_call_error(version, exc.message_id, exc.code, exc.description)
        return "frame-error"
    if isinstance(message, framing.CallError):
        error = errors.station_call_error("FUZZ", "Reset", message)
        str(error)
        return "call-error"
    if isinstance(message, framing.CallResult):
        action = message.message_id.split(":", 1)[0]
        if action not in _KNOWN["1" if data[0] & 1 else "2"]:
            return "answer-unmatched"
        _instrument_validator(version, action, True)
        try:
            schemas.validate_response(version, action, message.payload)
        except schemas.SchemaViolation:
            return "answer-refused"
        return "answer-ok"
    return _check_call(version, message)


def _check_call(version: Any, call: Any) -> Outcome:
    framing, schemas, errors = _M["framing"], _M["schemas"], _M["errors"]
    handler = _M["dispatch"].ADAPTERS[version].handlers.get(call.action)
    if handler is None:
        return "not-handled"
    _instrument_validator(version, call.action, False)
    try:
        schemas.validate_request(version, call.action, call.payload)
    except schemas.SchemaViolation as exc:
        code = errors.schema_error_code(exc.rule)
        framing.encode_call_error(version, call.message_id, code, str(exc))
        return "rejected"
    ctx = _M["CallContext"](_M["StationId"]("FUZZ"), _NOW, cast(Any, _RecordingService()))
    coroutine = handler(ctx, call.payload)
    try:
        coroutine.send(None)
    except ConversionDone as done:
        _check_values(done.args)
        return "converted"
    except errors.CallRejected as exc:
        framing.encode_call_error(version, call.message_id, exc.code, exc.description)
        return "rejected"
    except StopIteration:
        return "answered"  # a handler that needed no service call (none today)
    coroutine.close()
    raise AssertionError(f"{call.action} awaited something other than the service")


def _check_values(value: Any, depth: int = 0) -> None:
    """What an adapter hands the service must be storable as it is: aware UTC times in range, finite numbers."""
    from csms.protocol.common import EARLIEST_TIME, LATEST_TIME

    if isinstance(value, datetime):
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0), f"time not in UTC: {value!r}"
        assert EARLIEST_TIME <= value < LATEST_TIME, f"time out of range: {value!r}"
    elif isinstance(value, float):
        assert math.isfinite(value), f"number not finite: {value!r}"
    elif isinstance(value, int) and not isinstance(value, bool):
        assert -(2**63) <= value < 2**63, f"integer beyond int64: {value!r}"
    elif depth < 8 and dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            _check_values(getattr(value, field.name), depth + 1)
    elif depth < 8 and isinstance(value, tuple | list):
        for item in value:
            _check_values(item, depth + 1)


def corpus_files(path: Path = CORPUS) -> Iterator[Path]:
    yield from sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]


def replay(paths: list[Path]) -> dict[Outcome, int]:
    outcomes: dict[Outcome, int] = {}
    for root in paths:
        for file in corpus_files(root):
            outcome = check_frame(file.read_bytes())
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


# -- seeds --------------------------------------------------------------------------------------------------


def _seed_frames() -> Iterator[tuple[str, bytes]]:
    """One schema-valid CALL per handled action and one CALLRESULT per command, drawn from the schemas."""
    from hypothesis import HealthCheck, find, settings

    from benchmarks.fuzzing import dumps, from_schema, request_schema, response_schema

    quiet = settings(database=None, max_examples=200, suppress_health_check=list(HealthCheck))
    versions = {"1": "ocpp1.6", "2": "ocpp2.0.1"}
    for prefix, subprotocol in versions.items():
        version = _M["OcppVersion"].V16 if prefix == "1" else _M["OcppVersion"].V201
        handled = sorted(_M["dispatch"].ADAPTERS[version].handlers)
        for action in handled:
            # The first example hypothesis finds whose conversion completes: a seed that reaches every handler.
            payload = find(
                from_schema(request_schema(subprotocol, action)),
                lambda p, a=action, x=prefix: check_frame(f'{x}[2,"s","{a}",{dumps(p)}]'.encode()) == "converted",
                settings=quiet,
            )
            yield f"seed-{prefix}-call-{action}", f'{prefix}[2,"seed-1","{action}",{dumps(payload)}]'.encode()
        commands = sorted(a for a in _KNOWN[prefix] if a not in handled)
        for action in commands:
            try:
                answer = find(from_schema(response_schema(subprotocol, action)), lambda _: True, settings=quiet)
            except (FileNotFoundError, KeyError):
                continue
            yield f"seed-{prefix}-result-{action}", f'{prefix}[3,"{action}:1",{dumps(answer)}]'.encode()
        yield f"seed-{prefix}-error", f'{prefix}[4,"Reset:1","NotSupported","no",{{}}]'.encode()


def _dictionary_words() -> list[str]:
    """Every property name and enum value of both versions' schemas, and the frame's own punctuation.

    libFuzzer splices these into inputs: "chargingStation" or "EVConnected" is far likelier to appear whole.
    """
    from benchmarks.fuzzing import SUBPROTOCOLS, _schema_dir

    words: set[str] = {'[2,"', '[3,"', '[4,"', '":', '":{', '":[', '"2026-01-01T00:00:00Z"', "1e400", "-0", "2.0"}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    words.update(f'"{name}"' for name in value)
                if key == "enum" and isinstance(value, list):
                    words.update(f'"{item}"' for item in value if isinstance(item, str))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for subprotocol in SUBPROTOCOLS:
        for path in sorted(_schema_dir(subprotocol).glob("*.json")):
            walk(orjson.loads(path.read_bytes()))
            words.add(f'"{path.stem.removesuffix("Request").removesuffix("Response")}"')
    return sorted(word for word in words if len(word) <= 64)


def make_dictionary() -> None:
    lines = ['"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"' for word in _dictionary_words()]
    DICTIONARY.write_text("# libFuzzer dictionary, written by fuzz_atheris --make-seeds\n" + "\n".join(lines) + "\n")
    print(f"{len(lines)} words written to {DICTIONARY.relative_to(ROOT)}")


def make_seeds() -> int:
    _M.update(_imports())
    CORPUS.mkdir(parents=True, exist_ok=True)
    for old in CORPUS.glob("seed-*"):
        old.unlink()
    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, frame in _seed_frames():
            (CORPUS / name).write_bytes(frame)
            count += 1
    print(f"{count} seeds written to {CORPUS.relative_to(ROOT)}")
    make_dictionary()
    return 0


# -- atheris ------------------------------------------------------------------------------------------------


def _instrument_validator(version: Any, action: str, response: bool) -> None:
    """fastjsonschema compiles each schema to Python at run time: instrument it too, on its first use.

    Compiling all 200-odd schemas up front takes most of a minute; a run only pays for the actions it reaches.
    """
    key = (version, action, response)
    if _INSTRUMENT is None or key in _INSTRUMENTED:
        return
    _INSTRUMENTED.add(key)
    compiled = _M["schemas"]._validator(version, action, response)
    if compiled is None:
        return
    for value in list(compiled[0].__globals__.values()):
        code = getattr(value, "__code__", None)
        if code is not None and code.co_filename == "<string>":
            _INSTRUMENT(value)


_INSTRUMENT: Callable[[Any], Any] | None = None
_INSTRUMENTED: set[tuple[Any, str, bool]] = set()


def fuzz(libfuzzer_args: list[str]) -> int:
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (it ships wheels for Linux x86-64 only): `uv sync` there", file=sys.stderr)
        return 2
    with atheris.instrument_imports(include=["csms.protocol", "csms.domain"]):
        _M.update(_imports())
    global _INSTRUMENT
    _INSTRUMENT = atheris.instrument_func
    SCRATCH.mkdir(parents=True, exist_ok=True)
    # libFuzzer reruns argv[0] through the shell for -merge=1 and -fork: make it the command that started us.
    args = [f"{sys.executable} -m benchmarks.fuzz_atheris", *libfuzzer_args]
    if not any(a.startswith(("-runs=", "-max_total_time=")) for a in libfuzzer_args):
        args.append(f"-max_total_time={DEFAULT_SECONDS}")
    if not any(a.startswith("-dict=") for a in libfuzzer_args) and "-merge=1" not in libfuzzer_args:
        args.append(f"-dict={DICTIONARY}")
    if not any(not a.startswith("-") for a in libfuzzer_args):
        args += [str(SCRATCH), str(CORPUS)]
    atheris.Setup(args, check_frame)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replay", nargs="+", type=Path, help="run these files or folders through the oracle")
    parser.add_argument("--make-seeds", action="store_true", help="rewrite the seed-* inputs of the corpus")
    args, libfuzzer_args = parser.parse_known_args(argv)
    if args.make_seeds:
        return make_seeds()
    if args.replay:
        outcomes = replay(args.replay)
        print(", ".join(f"{name}: {count}" for name, count in sorted(outcomes.items())))
        return 0
    return fuzz(libfuzzer_args)


if __name__ == "__main__":
    sys.exit(main())
