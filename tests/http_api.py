"""The test suite's way into the HTTP API: every request carries the admin bearer token the test server has."""

from __future__ import annotations

import httpx

__all__ = ["ADMIN_HEADERS", "ADMIN_TOKEN", "CLI_ENV", "admin_client"]

# make_settings (tests/conftest.py) configures this as api.admin_token; the CLI reads it from CSMS_API_TOKEN.
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# The environment for `csms` CLI runs in tests (typer.testing.CliRunner(env=CLI_ENV)).
CLI_ENV = {"CSMS_API_TOKEN": ADMIN_TOKEN}


def admin_client(api_port: int, timeout: float = 15) -> httpx.AsyncClient:
    """An API client for ``/api/v1`` on the loopback server at ``api_port``, authenticated as admin."""
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}/api/v1", headers=ADMIN_HEADERS, timeout=timeout)
