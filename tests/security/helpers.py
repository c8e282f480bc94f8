"""Helpers for the charger-security tests: URLs, Basic-auth headers, handshake outcomes, security events."""

from __future__ import annotations

import base64
import ssl
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms.runtime.app import CentralSystem
from tests.http_api import admin_client

V16_BOOT = {"chargePointVendor": "Acme", "chargePointModel": "AC22"}
V201_BOOT = {"chargingStation": {"vendorName": "Acme", "model": "AC22"}, "reason": "PowerUp"}
BOOTS = {"ocpp1.6": V16_BOOT, "ocpp2.0.1": V201_BOOT}


def ws_url(system: CentralSystem, identity: str, tls: bool = False) -> str:
    if tls:
        return f"wss://127.0.0.1:{system.ocpp_tls_port}/ocpp/{identity}"
    return f"ws://127.0.0.1:{system.ocpp_port}/ocpp/{identity}"


def basic(user: str | bytes, password: str | bytes) -> dict[str, str]:
    raw = (user.encode() if isinstance(user, str) else user) + b":"
    raw += password.encode() if isinstance(password, str) else password
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def handshake(
    url: str,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    subprotocols: tuple[str, ...] = ("ocpp1.6",),
) -> tuple[int, dict[str, str], str]:
    """Open and close a websocket: (101, {}, "") when upgraded, else the refusal's status, headers and body."""
    try:
        async with connect(
            url,
            subprotocols=list(subprotocols),  # type: ignore[arg-type]
            additional_headers=headers,
            open_timeout=5,
            ssl=context,  # type: ignore[list-item]
        ):
            return 101, {}, ""
    except InvalidStatus as exc:
        response = exc.response
        return response.status_code, dict(response.headers.raw_items()), bytes(response.body or b"").decode()


async def events(system: CentralSystem, **params: Any) -> list[dict[str, Any]]:
    async with admin_client(system.api_port) as http:
        response = await http.get("/security-events", params=params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


async def set_security(system: CentralSystem, station_id: str, **body: Any) -> dict[str, Any]:
    async with admin_client(system.api_port) as http:
        response = await http.put(f"/stations/{station_id}/security", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result
