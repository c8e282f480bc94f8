"""Hypothesis fuzzing of every action of OCPP 1.6 and 2.0.1 over real connections (engine: benchmarks/fuzzing.py).

Each action gets schema-valid payloads, mutated payloads and mutated frames. The checks live in
``FuzzClient.check``: one CALLRESULT or one CALLERROR with a spec code (never InternalError) per CALL, and the
connection still answers a Heartbeat after every frame. The error-log tripwire fails a test on any unhandled
exception in the server. `python -m benchmarks.run_fuzz` runs the same with many more examples.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from benchmarks.fuzzing import (  # noqa: E402
    SUBPROTOCOLS,
    FuzzClient,
    FuzzFrame,
    ServerThread,
    Tally,
    actions,
    call_frames,
    raw_frames,
)
from tests.conftest import make_settings  # noqa: E402

pytestmark = pytest.mark.timeout(120)

CASES = [(subprotocol, action) for subprotocol in SUBPROTOCOLS for action in actions(subprotocol)]
TALLY = Tally()


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FuzzClient]]:
    """One real server for the module and one booted fuzz station per OCPP version."""
    # No keepalive pings: their payload comes from `random`, which hypothesis must see untouched while it draws.
    with ServerThread(make_settings(tmp_path_factory.mktemp("fuzz"), ocpp={"ping_interval": None})) as server:
        connected = {
            subprotocol: FuzzClient(server.url(f"FUZZ-{subprotocol}"), subprotocol, TALLY)
            for subprotocol in SUBPROTOCOLS
        }
        yield connected
        for client in connected.values():
            client.close()


def frames(subprotocol: str, action: str) -> st.SearchStrategy[FuzzFrame]:
    return st.one_of(
        call_frames(subprotocol, action, mutate=False),
        call_frames(subprotocol, action),
        call_frames(subprotocol, action),
        raw_frames(subprotocol, action),
    )


@pytest.mark.sqlite_only(
    "PostgreSQL text cannot hold NUL (U+0000): a schema-valid string containing it is answered "
    "PropertyConstraintViolation there, which this oracle counts as a valid frame refused "
    "(test_durability_replay.py::test_a_nul_character_*)"
)
@pytest.mark.parametrize(("subprotocol", "action"), CASES, ids=[f"{s}-{a}" for s, a in CASES])
def test_fuzzed_frames_get_a_spec_answer_and_the_connection_survives(
    clients: dict[str, FuzzClient], subprotocol: str, action: str
) -> None:
    """Valid, mutated and malformed frames of one action each get one spec answer; the connection keeps serving."""
    client = clients[subprotocol]
    before = client.tally.examples
    # Actions we handle get more examples; CSMS-initiated ones only need to be refused well.
    budget = 10 if action in client.handled else 2

    @settings(
        max_examples=budget,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(frame=frames(subprotocol, action))
    def run(frame: FuzzFrame) -> None:
        client.check(action, frame)

    run()
    assert client.tally.examples - before >= budget


def test_fuzz_benchmark_quick_mode_covers_every_action(tmp_path: Path) -> None:
    """`run_fuzz --quick` fuzzes every action and every command answer of both versions, with no failure or ERROR."""
    figures = tmp_path / "fuzz.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_fuzz", "--quick", "--json", str(figures)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(figures.read_text())
    assert report["actions"] == len(CASES)
    assert report["failures"] == [] and report["error_logs"] == []
    assert report["results"] > 0 and sum(report["errors"].values()) > 0
    # The second pass answers every operator command of both versions with fuzzed frames.
    assert report["answers"]["commands"] >= 30 and report["answers"]["examples"] >= 2 * report["answers"]["commands"]
    assert "| charger answers to our commands: commands fuzzed |" in done.stdout
    assert "| actions fuzzed |" in done.stdout
