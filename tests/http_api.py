"""The test suite's way into the HTTP API: the admin bearer token the test server has, and accounts with keys."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

__all__ = [
    "ADMIN_HEADERS",
    "ADMIN_TOKEN",
    "CLI_ENV",
    "account_with_key",
    "admin_client",
    "bearer",
    "driver_account",
]

# make_settings (tests/conftest.py) configures this as api.admin_token; the CLI reads it from CSMS_API_TOKEN.
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# The environment for `csms` CLI runs in tests (typer.testing.CliRunner(env=CLI_ENV)).
CLI_ENV = {"CSMS_API_TOKEN": ADMIN_TOKEN}


def admin_client(api_port: int, timeout: float = 15) -> httpx.AsyncClient:
    """An API client for ``/api/v1`` on the loopback server at ``api_port``, authenticated as admin."""
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}/api/v1", headers=ADMIN_HEADERS, timeout=timeout)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def driver_account(account_id: str) -> dict[str, Any]:
    """The body that creates a driver account (POST /accounts): id tokens and bookings name their driver."""
    return {"id": account_id, "name": f"Driver {account_id}", "role": "driver"}


async def account_with_key(
    api_port: int, account_id: str, role: str = "driver", site_ids: Iterable[str] = ()
) -> dict[str, str]:
    """Create an account (as admin) with one API key; the headers that authenticate as it."""
    async with admin_client(api_port) as http:
        body = {"id": account_id, "name": account_id, "role": role, "site_ids": list(site_ids)}
        response = await http.post("/accounts", json=body)
        assert response.status_code == 201, response.text
        response = await http.post(f"/accounts/{account_id}/api-keys", json={"name": "test"})
        assert response.status_code == 201, response.text
        return bearer(response.json()["key"])
