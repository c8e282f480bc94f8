"""The atheris corpus (benchmarks/fuzz_corpus/atheris) replayed through the harness's oracle, without atheris.

Every committed input runs through frame parsing, schema validation and the adapters' conversion into domain
values (benchmarks/fuzz_atheris.py, ``check_frame``); any exception other than those that become a CALLERROR
fails. The seeds (one schema-valid CALL per handled action of both versions) must reach the service. The corpus
keeps the inputs that found bugs, so this is their regression test too.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from benchmarks.fuzz_atheris import CORPUS, check_frame, corpus_files  # noqa: E402
from csms.protocol.dispatch import ADAPTERS  # noqa: E402
from csms.protocol.versions import OcppVersion  # noqa: E402

FILES = list(corpus_files(CORPUS))


def test_the_corpus_holds_a_valid_call_of_every_handled_action_of_both_versions() -> None:
    names = {file.name for file in FILES}
    for prefix, version in (("1", OcppVersion.V16), ("2", OcppVersion.V201)):
        for action in ADAPTERS[version].handlers:
            assert f"seed-{prefix}-call-{action}" in names


@pytest.mark.parametrize("file", [f for f in FILES if "-call-" in f.name], ids=lambda f: f.name)
def test_a_seed_call_is_converted_into_domain_values(file: Path) -> None:
    assert check_frame(file.read_bytes()) == "converted"


def test_every_corpus_input_ends_in_an_outcome_the_oracle_allows() -> None:
    outcomes: dict[str, int] = {}
    for file in FILES:
        try:
            outcome = check_frame(file.read_bytes())
        except Exception as exc:  # the oracle: nothing else may escape; name the input that broke it
            raise AssertionError(f"{file.name}: {exc!r}") from exc
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # The corpus exercises more than the happy path: refusals at each stage are part of it.
    assert {"converted", "frame-error", "rejected", "answer-ok"} <= outcomes.keys(), outcomes


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris ships wheels for Linux x86-64 only")
def test_a_short_coverage_guided_run_finds_nothing(tmp_path: Path) -> None:
    # A few seeds only: each action's validator is compiled and instrumented on first use, which costs seconds.
    scratch = tmp_path / "corpus"
    scratch.mkdir()
    for name in ("seed-1-call-MeterValues", "seed-2-call-TransactionEvent", "seed-2-result-GetVariables"):
        (scratch / name).write_bytes((CORPUS / name).read_bytes())
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.fuzz_atheris", "-runs=5000", f"-artifact_prefix={tmp_path}/", str(scratch)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 5000 runs" in run.stderr
    assert not list(tmp_path.glob("crash-*"))
