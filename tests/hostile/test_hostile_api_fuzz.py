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

import httpx
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
    _fuzz_every_operation(api_schema, ADMIN_HEADERS, EXAMPLES_PER_OPERATION)


def test_api_never_answers_5xx_to_operators_and_drivers(api_schema: Any, api_server: ServerThread) -> None:
    """The same with an operator's and a driver's key: the role checks (site and owner lookups) never fail with a
    5xx on generated ids, bodies and parameters either."""
    base = f"http://127.0.0.1:{api_server.system.api_port}/api/v1"
    with httpx.Client(base_url=base, headers=ADMIN_HEADERS, timeout=15) as http:
        assert http.post("/grid-nodes", json={"id": "fuzz-site"}).status_code in (201, 409)
        keys = []
        for account, role, sites in (("fuzz-op", "operator", ["fuzz-site"]), ("fuzz-driver", "driver", [])):
            body = {"id": account, "name": account, "role": role, "site_ids": sites}
            assert http.post("/accounts", json=body).status_code in (201, 409)
            created = http.post(f"/accounts/{account}/api-keys", json={"name": "fuzz"})
            assert created.status_code == 201, created.text
            keys.append(created.json()["key"])
    for key in keys:
        _fuzz_every_operation(api_schema, {"Authorization": f"Bearer {key}"}, 2)


def _fuzz_every_operation(api_schema: Any, headers: dict[str, str], examples: int) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30, "the OpenAPI document lists every /api/v1 operation"
    failures: list[str] = []
    requests = 0
    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def call(case: Any) -> None:
            nonlocal requests
            requests += 1
            response = case.call(headers=headers, timeout=15)
            assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}"

        try:
            call()
        except AssertionError as exc:  # one shrunk example per operation, all reported together
            failures.append(f"{operation.label}: {str(exc).splitlines()[0]}")
    assert failures == [], "\n".join(failures)
    assert requests >= len(operations), "every operation was called"
