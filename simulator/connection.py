"""The WebSocket side of a simulated station: connect, boot, heartbeat, drain the outbox, reconnect.

One `Connection` per station. Its loop (re)connects with exponential back-off (real seconds,
jittered from the station's seeded RNG), boots once per power cycle (a plain reconnect does not
boot again, as the specs ask), then runs a heartbeat task and the outbox drain until the socket
closes. Going offline on purpose (`go_offline`) stops the loop from reconnecting until
`go_online`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from simulator.ocpp_compat import CALL_FAILURES, SEND_FAILURES

if TYPE_CHECKING:
    from simulator.station import SimStation

__all__ = ["Connection", "NotConnectedError"]

LOG = logging.getLogger("simulator.connection")


class NotConnectedError(RuntimeError):
    """A direct call was attempted while the station has no booted connection."""


class Connection:
    def __init__(self, station: SimStation, *, password: str | None, backoff_s: tuple[float, float]) -> None:
        self.station = station
        self.messages_sent = 0
        self.reconnects = 0
        self._password = password
        self._backoff = backoff_s
        self._cp: Any = None
        self._ws: ClientConnection | None = None
        self._online = asyncio.Event()
        self._online.set()
        self._connected = asyncio.Event()
        self._booted = False
        self._boot_reason = "PowerUp"
        self._stopping = False
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sending = False

    @property
    def connected(self) -> bool:
        """Connected and accepted by the CSMS (BootNotification answered Accepted)."""
        return self._connected.is_set()

    @property
    def booted(self) -> bool:
        return self._booted

    async def wait_connected(self) -> None:
        await self._connected.wait()

    # -- control ---------------------------------------------------------------------------------

    async def go_offline(self, *, abrupt: bool = False) -> None:
        self._online.clear()
        if not abrupt:
            # A clean drop: let an in-flight queued CALL get its answer so it is not sent twice.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.station.response_timeout
            while self._sending and loop.time() < deadline:
                await asyncio.sleep(0.01)
        ws = self._ws
        if ws is not None:
            if abrupt:
                ws.transport.abort()
            else:
                await ws.close()
        while self._connected.is_set():
            await asyncio.sleep(0.01)

    def go_online(self) -> None:
        self._online.set()

    async def reboot(self, reason: str) -> None:
        """Close the connection; the loop reconnects at once and boots with `reason`."""
        self._booted = False
        self._boot_reason = reason
        if self._ws is not None:
            await self._ws.close()

    async def close(self) -> None:
        """Stop for good (the caller cancels the `run` task)."""
        self._stopping = True
        self._online.set()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- calls -----------------------------------------------------------------------------------

    async def call(self, payload: Any) -> Any:
        """Send a CALL directly; raises on CALLERROR, timeout, closed socket or no connection."""
        cp = self._cp
        if cp is None or not self.connected:
            raise NotConnectedError(self.station.identity)
        result = await cp.call(payload, suppress=False, skip_schema_validation=not self.station.validate_messages)
        self.messages_sent += 1
        return result

    async def send_boot(self) -> None:
        """BootNotification on TriggerMessage (the station is already accepted)."""
        handler = self.station.handler
        result = handler.boot_result(await self.call(handler.boot_request("Triggered")))
        if result.status == "Accepted" and result.interval > 0:
            handler.heartbeat_interval_set(result.interval)
            self.restart_heartbeat()

    async def send_heartbeat(self) -> None:
        try:
            await self.call(self.station.handler.heartbeat_request())
        except NotConnectedError:
            pass
        except CALL_FAILURES as exc:
            self.station.note(f"Heartbeat failed: {exc!r}")

    def restart_heartbeat(self) -> None:
        """Apply a changed HeartbeatInterval at once instead of after the current sleep."""
        old = self._tasks.get("heartbeat")
        if old is not None:
            old.cancel()
            self._tasks["heartbeat"] = asyncio.create_task(self._heartbeat_loop())

    # -- the loop --------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        password = self.station.handler.settings().basic_auth_password or self._password
        if not password:
            return {}
        token = base64.b64encode(f"{self.station.identity}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def _tls(self) -> dict[str, Any]:
        # wss:// (security profiles 2, 3): the station's trust store and client certificate, when given; passing
        # ssl=None would make websockets open plain TCP to a TLS port.
        context = self.station.ssl_context
        return {"ssl": context} if context is not None else {}

    def _backoff_delay(self, failures: int) -> float:
        base, cap = self._backoff
        delay = min(cap, base * 2.0 ** min(failures - 1, 10))
        return delay * (0.5 + self.station.rng.random() / 2)

    async def run(self) -> None:
        st = self.station
        failures = 0
        while not self._stopping:
            await self._online.wait()
            if self._stopping:
                return
            try:
                ws = await connect(
                    st.url,
                    subprotocols=[Subprotocol(st.protocol.value)],
                    additional_headers=self._auth_headers(),
                    **self._tls(),
                    open_timeout=st.response_timeout,
                    proxy=None,
                    ping_interval=60,
                    ping_timeout=60,
                )
            except Exception as exc:  # refused, timed out, 401, bad URI: keep trying with back-off
                failures += 1
                LOG.info("%s: connect failed: %r", st.identity, exc)
                await asyncio.sleep(self._backoff_delay(failures))
                continue
            if not self._online.is_set():  # went offline while the handshake was in progress
                await ws.close()
                continue
            failures = 0
            rebooting = False
            try:
                await self._serve(ws)
            except ConnectionClosed:
                pass
            except Exception as exc:  # a bug must not kill the station; record and reconnect
                st.note(f"connection error: {exc!r}")
            finally:
                rebooting = not self._booted
                await self._teardown(ws)
            if self._stopping:
                return
            if self._online.is_set() and not rebooting:
                # Unexpected close: back off before reconnecting, as real stations do.
                self.reconnects += 1
                await asyncio.sleep(self._backoff_delay(1))

    async def _serve(self, ws: ClientConnection) -> None:
        st = self.station
        self._ws = ws
        cp = st.handler.create_charge_point(ws)
        self._cp = cp
        reader: asyncio.Task[None] = asyncio.create_task(cp.start())
        self._tasks["reader"] = reader
        just_booted = False
        if not self._booted:
            boot = asyncio.create_task(self._boot_until_accepted(cp))
            self._tasks["boot"] = boot
            done, _ = await asyncio.wait({reader, boot}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                boot.cancel()
                await reader  # re-raises ConnectionClosed
                return
            await boot
            just_booted = True
        self._connected.set()
        st.core.sync_statuses(force=True)  # (re)report every connector, as after any reconnect
        self._tasks["heartbeat"] = asyncio.create_task(self._heartbeat_loop())
        self._tasks["drain"] = asyncio.create_task(self._drain_loop(cp))
        if just_booted:
            st.enqueue(st.handler.security_event_item("StartupOfTheDevice", "simulated power-up"))
        await reader

    async def _teardown(self, ws: ClientConnection) -> None:
        self._connected.clear()
        self._cp = None
        self._ws = None
        tasks = list(self._tasks.values())
        self._tasks = {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ws.close()
        self.station.outbox.drop_volatile()

    async def _boot_until_accepted(self, cp: Any) -> None:
        st = self.station
        while True:
            interval = 10
            try:
                result = st.handler.boot_result(await cp.call(st.handler.boot_request(self._boot_reason)))
                self.messages_sent += 1
            except CALL_FAILURES as exc:
                st.note(f"BootNotification failed: {exc!r}")
            else:
                if result.interval > 0:
                    interval = result.interval
                if result.status == "Accepted":
                    st.handler.heartbeat_interval_set(interval)
                    self._booted = True
                    self._boot_reason = "PowerUp"
                    return
            # Pending/Rejected: retry after the interval the CSMS asked for (simulated seconds).
            await st.clock.sleep(interval)

    async def _heartbeat_loop(self) -> None:
        st = self.station
        while True:
            await st.clock.sleep(max(1, st.handler.settings().heartbeat_interval_s))
            await self.send_heartbeat()

    async def _drain_loop(self, cp: Any) -> None:
        st = self.station
        outbox = st.outbox
        while True:
            item = await outbox.next_item()
            try:
                self._sending = True
                result = await cp.call(item.build(), suppress=False, skip_schema_validation=not st.validate_messages)
            except TimeoutError:
                item.attempts += 1
                settings = st.handler.settings()
                if not item.persistent or item.attempts >= max(1, settings.tx_message_attempts):
                    st.note(f"{item.action} dropped after {item.attempts} timeouts")
                    outbox.pop_head()
                else:
                    await st.clock.sleep(settings.tx_message_retry_s * item.attempts)
                continue
            except SEND_FAILURES as exc:
                # A CALLERROR (or a payload we could not build) will not get better by retrying.
                st.note(f"{item.action} failed: {exc!r}")
                outbox.pop_head()
                continue
            finally:
                self._sending = False
            self.messages_sent += 1
            outbox.pop_head()
            if item.on_result is not None:
                try:
                    item.on_result(result)
                except Exception as exc:  # a bad CSMS answer must not stop the queue
                    st.note(f"{item.action} result handling failed: {exc!r}")
