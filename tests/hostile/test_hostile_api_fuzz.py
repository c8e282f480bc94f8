"""Schemathesis against the live HTTP API: every operation in the OpenAPI document the server serves, no 5xx.

The schema is loaded from the running server when the test runs, so endpoints added later are fuzzed without
editing this file. Requests carry the admin token (every operation is reachable) and go over real loopback
HTTP to a real server with a real SQLite file. Stations are not connected, so commands end in 409.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st
from schemathesis.generation.modes import GenerationMode

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from benchmarks.fuzzing import ServerThread  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.http_api import ADMIN_HEADERS  # noqa: E402

pytestmark = pytest.mark.timeout(120)
EXAMPLES_PER_OPERATION = 4


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    # No keepalive pings: their payload comes from `random`, which hypothesis must see untouched while it draws.
    settings_ = make_settings(tmp_path_factory.mktemp("api-fuzz"), ocpp={"ping_interval": None})
    with ServerThread(settings_) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(api_server: ServerThread) -> Any:
    base = f"http://127.0.0.1:{api_server.system.api_port}"
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json", headers=ADMIN_HEADERS, timeout=10)
    schema.config.update(base_url=base)
    return schema


def test_api_never_answers_5xx(api_schema: Any) -> None:
    """Valid and invalid generated requests to every API operation in the served OpenAPI never get a 5xx answer."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30, "the OpenAPI document lists every /api/v1 operation"
    failures: list[str] = []
    requests = 0
    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def call(case: Any) -> None:
            nonlocal requests
            requests += 1
            response = case.call(headers=ADMIN_HEADERS, timeout=15)
            assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}"

        try:
            call()
        except AssertionError as exc:  # one shrunk example per operation, all reported together
            failures.append(f"{operation.label}: {str(exc).splitlines()[0]}")
    assert failures == [], "\n".join(failures)
    assert requests >= len(operations) * 2
