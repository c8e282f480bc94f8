"""The `csms serve` process: start from config + environment, refuse bad config, shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from csms.runtime.app import CentralSystem

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_env(tmp_path: Path, ocpp_port: int, api_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update(
        CSMS_OCPP__HOST="127.0.0.1",
        CSMS_OCPP__PORT=str(ocpp_port),
        CSMS_API__HOST="127.0.0.1",
        CSMS_API__PORT=str(api_port),
        CSMS_DATABASE__URL=f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        CSMS_LOG__FORMAT="json",
    )
    env.update(extra)
    return env


async def wait_listening(port: int, process: asyncio.subprocess.Process, seconds: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if process.returncode is not None:
            raise AssertionError(f"csms exited early with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError("csms did not start listening")


async def start(tmp_path: Path, *args: str, **env: str) -> tuple[asyncio.subprocess.Process, int]:
    ocpp_port, api_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms",
        "serve",
        *args,
        cwd=ROOT,
        env=serve_env(tmp_path, ocpp_port, api_port, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return process, ocpp_port


async def test_sigterm_closes_chargers_with_1001_and_keeps_data(tmp_path: Path) -> None:
    """SIGTERM closes every charger socket with 1001, exits 0, and what was answered is on disk."""
    process, port = await start(tmp_path, "--config", "config/csms.toml")
    try:
        await wait_listening(port, process)
        async with connect(f"ws://127.0.0.1:{port}/ocpp/SIG-1", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            await ws.send('[2,"1","BootNotification",{"chargePointVendor":"A","chargePointModel":"B"}]')
            assert '"Accepted"' in str(await asyncio.wait_for(ws.recv(), 10))
            process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    import sqlite3

    with sqlite3.connect(tmp_path / "serve.db") as db:
        assert db.execute("select registration from stations where id='SIG-1'").fetchone() == ("Accepted",)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"CSMS_OCPP__PORT": "not-a-port"}, "ocpp.port"),
        ({"CSMS_STATIONS__UNKNOWN_STATION_STATUS": "Maybe"}, "stations.unknown_station_status"),
        ({"CSMS_DATABASE__MAX_BATCH": "0"}, "database.max_batch"),
        ({"CSMS_DATABASE__URL": "mysql+aiomysql://csms@127.0.0.1/csms"}, "database.url"),
    ],
)
async def test_invalid_config_fails_at_start_naming_the_key(tmp_path: Path, env: dict[str, str], key: str) -> None:
    """A bad value stops `csms serve` before it listens, with a message naming the key."""
    process, _ = await start(tmp_path, "--config", "config/csms.toml", **env)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert key in stderr.decode()


async def test_unknown_key_in_config_file_is_refused(tmp_path: Path) -> None:
    """A typo in the TOML file is an error naming the key, not silently ignored."""
    config = tmp_path / "bad.toml"
    config.write_text("[ocpp]\nheartbeat_intervall = 60\n")
    process, _ = await start(tmp_path, "--config", str(config))
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "ocpp.heartbeat_intervall" in stderr.decode()


async def test_a_slow_shutdown_step_says_where_tasks_wait(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A shutdown step past its warning time is logged with the step's name and where each task waits."""
    from csms.runtime import app as app_module

    monkeypatch.setattr(app_module, "SLOW_STOP_STEP_S", 0.05)

    async def stuck_for_a_while() -> None:
        await asyncio.sleep(0.3)

    with caplog.at_level(logging.WARNING):
        await app_module._step("example step", stuck_for_a_while())
    [record] = [r for r in caplog.records if "shutdown step is slow" in r.getMessage()]
    assert "example step" in record.getMessage() and "stuck_for_a_while" in record.getMessage()


async def test_timer_loops_stop_even_when_woken_as_they_are_stopped(csms: CentralSystem) -> None:
    """A wake-up and a stop in the same step: each loop still ends. (asyncio.wait_for on Python 3.11 swallowed
    the cancel when the awaited event was set just before it, and the loop waited forever: a teardown hang.)"""
    assert csms.session_rules_loop and csms.smart_loop and csms.booking_timers
    loops = (
        (csms.session_rules_loop.wake, csms.session_rules_loop.stop),
        (csms.smart_loop.request_replan, csms.smart_loop.stop),
        (csms.booking_timers.poke, csms.booking_timers.stop),
    )
    for wake, stop in loops:
        await asyncio.sleep(0.05)  # the loop is idle, waiting to be woken
        wake()
        async with asyncio.timeout(5):  # stop() runs at once: its cancel lands in the same step as the wake-up
            await stop()


async def test_a_subscription_read_ends_when_cancelled_as_an_event_arrives() -> None:
    """The same race for a live-event subscription: the reader is cancelled, not left waiting."""
    from csms.service.events import EventBus

    bus = EventBus()
    subscription = bus.subscribe()
    reader = asyncio.create_task(subscription.next(timeout=30))
    await asyncio.sleep(0)
    bus.publish("test.event", datetime.now(UTC), {})
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(reader, 5)
