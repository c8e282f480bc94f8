"""Bulk OCPP fuzzing (benchmarks/fuzz_bulk.py): seeded mutations of hypothesis-drawn payloads, from worker processes.

The checks per frame are ``FuzzClient.check``'s (tests/hostile/test_hostile_fuzz.py); these tests cover what the
bulk mode adds: the seeded frames are reproducible and counted as asked, every action of both versions is fuzzed
from several processes with no failure and no ERROR, and a failure inside a worker reaches the report.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from benchmarks.fuzz_bulk import BulkPlan, payload_pool, run_bulk, seeded_frames  # noqa: E402
from benchmarks.fuzzing import MUTATIONS, RAW_MUTATIONS, SUBPROTOCOLS, ServerThread, actions  # noqa: E402
from tests.conftest import make_settings  # noqa: E402

pytestmark = pytest.mark.timeout(200)

ALL_ACTIONS = sum(len(actions(subprotocol)) for subprotocol in SUBPROTOCOLS)


def test_seeded_frames_are_reproducible_and_counted_as_asked() -> None:
    """The same seed rebuilds the same frames (a failure names seed and index); the mix is as asked."""
    pool = payload_pool("ocpp2.0.1", "TransactionEvent", 20, draw_seed=7)
    assert len(pool) > 1
    first = list(seeded_frames("TransactionEvent", pool, 300, 15, random.Random(7)))
    again = list(seeded_frames("TransactionEvent", pool, 300, 15, random.Random(7)))
    other = list(seeded_frames("TransactionEvent", pool, 300, 15, random.Random(8)))
    assert first == again and first != other
    kinds = [frame.mutation for frame in first]
    assert kinds.count("valid") == 15 and len(kinds) == 315
    payload_kinds = [kind for kind in kinds if kind in MUTATIONS]
    assert len(payload_kinds) == 200 and "nothing" not in payload_kinds
    assert sum(kind in RAW_MUTATIONS for kind in kinds) == 100
    # Every kind of both families shows up in a few hundred frames.
    assert set(kinds) == (set(MUTATIONS) - {"nothing"}) | set(RAW_MUTATIONS) | {"valid"}
    assert all(json.loads(frame.text)[2] == "TransactionEvent" for frame in first if frame.mutation == "valid")


def test_bulk_mode_fuzzes_every_action_from_worker_processes(tmp_path: Path) -> None:
    """`run_fuzz --mutations` with 2 workers: every action of both versions, the asked count of mutated frames each,
    no failed check and no ERROR line; the report says the mode."""
    figures = tmp_path / "fuzz.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_fuzz", "--mutations", "6", "--valid", "1", "--pool", "2"]
        + ["--workers", "2", "--answers", "1", "--no-write", "--json", str(figures)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(figures.read_text())
    assert report["actions"] == ALL_ACTIONS
    assert report["failures"] == [] and report["error_logs"] == []
    assert report["mutated_per_action"] == {"min": 6, "max": 6}
    assert report["examples"] == 7 * ALL_ACTIONS
    assert report["results"] > 0 and sum(report["errors"].values()) > 0
    assert "| mutated frames per action | 6 asked on every action" in done.stdout
    assert "--mutations 6 --workers 2" in done.stdout


def test_a_failure_in_a_worker_reaches_the_result_and_the_next_action_still_runs(tmp_path: Path) -> None:
    """With unknown stations refused (404 at the handshake) every action fails in its worker: each is reported with
    its seed, none stops the others."""
    settings = make_settings(tmp_path, ocpp={"ping_interval": None}, stations={"auto_register": False})
    with ServerThread(settings) as server:
        result = run_bulk(server.url(""), BulkPlan(mutations=3, valid=1, pool=1, workers=2, batch=2))
    assert len(result.failures) == ALL_ACTIONS, result.failures[:3]
    assert all("frames #0 to #" in failure and "404" in failure for failure in result.failures)
    assert {failure.split(":")[0] for failure in result.failures} == {
        f"{subprotocol} {action}" for subprotocol in SUBPROTOCOLS for action in actions(subprotocol)
    }
    assert result.tally.examples == 0
