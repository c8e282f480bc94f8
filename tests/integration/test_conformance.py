"""The independent ocpp-rpc client (Node, strict schema validation) runs full 1.6 and 2.0.1 sessions."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from csms.runtime.app import CentralSystem
from tests.http_api import admin_client

CONFORMANCE = Path(__file__).parents[1] / "conformance"
SCRIPT = CONFORMANCE / "conformance.js"
NODE_TIMEOUT = 60


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (CONFORMANCE / "node_modules" / "ocpp-rpc").is_dir():
        pytest.skip("conformance client not installed: run `make conformance-deps`")
    return node


async def _run(*argv: str) -> tuple[int, str]:
    # A subprocess the loop awaits, so the in-process server keeps serving while node talks to it.
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=CONFORMANCE
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        pytest.fail(f"conformance client did not finish in {NODE_TIMEOUT} s:\n{output.decode(errors='replace')}")
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.mark.timeout(NODE_TIMEOUT + 30)
async def test_ocpp_rpc_strict_client_passes_full_sessions(csms: CentralSystem) -> None:
    """Every CSMS answer to a full 1.6 (with security extension) and 2.0.1 session passes strict validation."""
    node = _node()
    code, output = await _run(node, str(SCRIPT), f"ws://127.0.0.1:{csms.ocpp_port}/ocpp")
    lines = output.splitlines()
    assert code == 0, output
    assert not [line for line in lines if line.startswith("FAIL")], output
    assert sum(line.startswith("PASS") for line in lines) >= 40, output
    async with admin_client(csms.api_port, timeout=10) as http:
        for identity, protocol in [("CONF-CP16", "ocpp1.6"), ("CONF-CS201", "ocpp2.0.1")]:
            station = (await http.get(f"/stations/{identity}")).json()
            assert station["protocol"] == protocol
            assert station["registration"] == "Accepted"


async def test_conformance_client_fails_loudly_without_a_server(tmp_path: Path) -> None:
    """The client itself is trustworthy: with nothing listening it exits non-zero and prints FAIL."""
    node = _node()
    code, output = await _run(node, str(SCRIPT), "ws://127.0.0.1:9/ocpp")
    assert code == 1, output
    assert "FAIL" in output
