"""`SimStation`: one simulated charging station (OCPP 1.6J or 2.0.1), the public test/fleet API.

The station combines the version-neutral `StationCore` (connectors, sessions, physics), a
`ProtocolHandler` for its OCPP version, an ordered `Outbox`, the `Connection` (connect, boot,
heartbeat, drain the outbox, reconnect with back-off), a physics tick, and short-lived follow-up
tasks: work that must happen after a CSMS call was answered, because `call()` inside an `ocpp`
handler would deadlock the connection's read loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from websockets.exceptions import ConnectionClosed

from simulator.clock import SimClock
from simulator.connection import Connection, NotConnectedError
from simulator.core import StationCore
from simulator.ev import EVSpec, EVState
from simulator.model import (
    Behaviour,
    ConnectorSnapshot,
    Protocol,
    StationSnapshot,
    StopReason,
    TxTrigger,
)
from simulator.ocpp_compat import CALL_FAILURES
from simulator.outbox import Outbox, OutboxItem
from simulator.profiles import ChargingProfile
from simulator.protocol import ProtocolHandler
from simulator.state import CoreEvent, PendingStart, Session

if TYPE_CHECKING:
    from simulator.v16 import V16Handler
    from simulator.v201 import V201Handler

__all__ = ["NotConnectedError", "SimStation"]

LOG = logging.getLogger("simulator.station")

_STOP_TRIGGERS = {
    StopReason.LOCAL: TxTrigger.STOP_AUTHORIZED,
    StopReason.REMOTE: TxTrigger.REMOTE_STOP,
    StopReason.EV_DISCONNECTED: TxTrigger.EV_DEPARTED,
    StopReason.DEAUTHORIZED: TxTrigger.DEAUTHORIZED,
    StopReason.HARD_RESET: TxTrigger.RESET,
    StopReason.SOFT_RESET: TxTrigger.RESET,
    StopReason.UNLOCK: TxTrigger.UNLOCK,
}
_AUTHORIZE_FAILURES: tuple[type[Exception], ...] = (NotConnectedError, ConnectionClosed, *CALL_FAILURES)


class SimStation:
    """A simulated charging station; see the module docstring for the moving parts."""

    def __init__(
        self,
        identity: str,
        url_base: str,
        protocol: Protocol | str,
        connectors: int = 1,
        clock: SimClock | None = None,
        *,
        password: str | None = None,
        rng: random.Random | None = None,
        behaviour: Behaviour | None = None,
        max_current_a: float = 32.0,
        voltage: float = 230.0,
        vendor: str = "OpenCSMS",
        model: str = "SimCharger",
        firmware_version: str = "1.0.0",
        config: dict[str, str] | None = None,
        tick_s: float = 5.0,
        response_timeout: float = 10.0,
        backoff_s: tuple[float, float] = (0.5, 10.0),
        validate_messages: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.identity = identity
        self.url = f"{url_base.rstrip('/')}/{quote(identity, safe='')}"
        # For wss:// URLs (security profiles 2 and 3): trust store and, for profile 3, the client certificate.
        self.ssl_context = ssl_context
        self.protocol = Protocol(protocol)
        self.clock = clock or SimClock()
        self.rng = rng or random.Random(identity)
        self.vendor, self.model, self.firmware_version = vendor, model, firmware_version
        self.response_timeout = response_timeout
        # Check what we send (and the answers to it) against the OCPP schemas; large fleets may skip this, as
        # the CSMS validates anyway and jsonschema costs more than the rest of a small message's handling.
        self.validate_messages = validate_messages
        self.tick_s = tick_s
        self.errors: list[str] = []
        self.outbox = Outbox()
        self._config_overrides = config or {}
        self.handler: ProtocolHandler = _make_handler(self, connectors)
        self.core = StationCore(
            connectors,
            rng=self.rng,
            settings=self.handler.settings,
            new_tx_key=self.handler.new_tx_key,
            emit=self._on_core_event,
            now=self.clock.now(),
            max_current_a=max_current_a,
            voltage=voltage,
            behaviour=behaviour,
        )
        self.link = Connection(self, password=password, backoff_s=backoff_s)
        self._reset_when_idle = False
        self._main_tasks: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._followups: list[Coroutine[Any, Any, Any]] = []
        self._deferred: list[OutboxItem] | None = None

    # -- configuration exposed to protocol handlers ----------------------------------------------

    @property
    def connector_count(self) -> int:
        return len(self.core.connectors)

    @property
    def config_overrides(self) -> dict[str, str]:
        return self._config_overrides

    @property
    def connected(self) -> bool:
        """Connected and accepted by the CSMS."""
        return self.link.connected

    @property
    def booted(self) -> bool:
        return self.link.booted

    @property
    def messages_sent(self) -> int:
        return self.link.messages_sent

    @property
    def reconnects(self) -> int:
        """Unexpected connection losses so far (not counting `go_offline` or reboots)."""
        return self.link.reconnects

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def v16(self) -> V16Handler:
        """The 1.6 adapter (config key store, 1.6-only messages); TypeError on a 2.0.1 station."""
        from simulator.v16 import V16Handler

        if not isinstance(self.handler, V16Handler):
            raise TypeError(f"{self.identity} is not an OCPP 1.6 station")
        return self.handler

    @property
    def v201(self) -> V201Handler:
        """The 2.0.1 adapter (device model, NotifyEvent/ChargingLimit/EVChargingNeeds builders)."""
        from simulator.v201 import V201Handler

        if not isinstance(self.handler, V201Handler):
            raise TypeError(f"{self.identity} is not an OCPP 2.0.1 station")
        return self.handler

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting and simulating; returns at once (see `wait_connected`)."""
        if self._main_tasks:
            return
        self._main_tasks = [
            asyncio.create_task(self.link.run(), name=f"{self.identity}-conn"),
            asyncio.create_task(self._physics_loop(), name=f"{self.identity}-physics"),
        ]

    async def stop(self, *, graceful: bool = False, timeout: float = 5.0) -> None:
        """Stop all tasks; `graceful` first ends running sessions and flushes the queue."""
        if graceful and self.connected:
            for c in list(self.core.connectors.values()):
                if c.session is not None:
                    self.core.end_transaction(c.connector_id, self.now(), StopReason.LOCAL, TxTrigger.STOP_AUTHORIZED)
            try:
                await asyncio.wait_for(self.outbox.wait_empty(), timeout)
            except TimeoutError:
                self.note("outbox not flushed before stop")
        tasks = [*self._main_tasks, *self._tasks]
        for task in tasks:
            task.cancel()
        await self.link.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._main_tasks, self._tasks = [], set()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until the station is connected and its BootNotification was accepted."""
        await asyncio.wait_for(self.link.wait_connected(), timeout)

    async def wait_queue_empty(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.outbox.wait_empty(), timeout)

    async def go_offline(self, *, abrupt: bool = False) -> None:
        """Drop the connection and stay offline (transaction messages queue up).

        `abrupt` aborts the TCP connection like a network failure; otherwise an in-flight queued
        message may finish first and the WebSocket is closed cleanly.
        """
        await self.link.go_offline(abrupt=abrupt)

    async def go_online(self) -> None:
        """Allow reconnecting; queued messages are replayed once the connection is back."""
        self.link.go_online()

    async def reboot(self, reason: str = "RemoteReset") -> None:
        """Close the connection and boot again (used by Reset)."""
        await self.link.reboot(reason)

    # -- EV and session API ----------------------------------------------------------------------

    async def plug_in(
        self,
        connector_id: int,
        ev: EVSpec | EVState | None = None,
        *,
        soc: float = 0.3,
        departure: datetime | None = None,
    ) -> None:
        """Connect an EV to a connector; starts a transaction if an authorization is waiting."""
        state = ev if isinstance(ev, EVState) else EVState(ev or EVSpec(), soc)
        self.core.plug_in(connector_id, state, self.now(), departure)

    async def unplug(self, connector_id: int) -> None:
        """Disconnect the EV (ends its transaction with EVDisconnected)."""
        self.core.unplug(connector_id, self.now())

    async def authorize(self, id_tag: str) -> str:
        """Authorization status of a tag: Authorize when online, else local list/cache/offline rules."""
        settings = self.handler.settings()
        if self.connected:
            try:
                result = await self.call(self.handler.authorize_request(id_tag))
            except _AUTHORIZE_FAILURES as exc:
                self.note(f"Authorize failed: {exc!r}")
            else:
                status = self.handler.authorize_status(result)
                if settings.auth_cache_enabled:
                    self.core.auth_cache[id_tag] = status
                return status
        local = self.core.local_auth(id_tag)
        if local is not None and settings.local_authorize_offline:
            return local
        return "Accepted" if settings.allow_offline_unknown else "Invalid"

    async def present_tag(self, connector_id: int, id_tag: str) -> bool:
        """Driver presents a tag: stops their own session, else authorizes and starts/arms one."""
        c = self.core.connector(connector_id)
        if c.session is not None:
            if c.session.id_tag != id_tag:
                return False
            await self.stop_session(connector_id, StopReason.LOCAL)
            return True
        if not self.core.startable(connector_id, id_tag):
            return False
        if await self.authorize(id_tag) != "Accepted" or not self.core.startable(connector_id, id_tag):
            return False
        timeout = self.handler.settings().connection_timeout_s
        pending = PendingStart(id_tag, self.now() + timedelta(seconds=timeout), TxTrigger.AUTHORIZED)
        self.core.authorize_start(connector_id, pending, self.now())
        return True

    async def start_session(
        self,
        connector_id: int,
        id_tag: str,
        ev: EVSpec | EVState | None = None,
        *,
        soc: float = 0.3,
        departure: datetime | None = None,
    ) -> Session | None:
        """Plug in (if no EV yet) and present a tag; returns the running session or None if refused."""
        if self.core.connector(connector_id).ev is None:
            await self.plug_in(connector_id, ev, soc=soc, departure=departure)
        await self.present_tag(connector_id, id_tag)
        return self.core.connector(connector_id).session

    async def stop_session(self, connector_id: int, reason: StopReason = StopReason.LOCAL) -> Session | None:
        """End the transaction on a connector (EV stays plugged: Finishing)."""
        trigger = _STOP_TRIGGERS.get(reason, TxTrigger.ABNORMAL)
        return self.core.end_transaction(connector_id, self.now(), reason, trigger)

    async def remote_start(
        self,
        connector_id: int,
        id_tag: str,
        *,
        remote_start_id: int | None = None,
        profile: ChargingProfile | None = None,
        profile_raw: dict[str, Any] | None = None,
    ) -> None:
        """Follow-up of an accepted remote start: authorize if configured, then start or arm."""
        if self.handler.settings().authorize_remote_start and await self.authorize(id_tag) != "Accepted":
            return
        if not self.core.startable(connector_id, id_tag):
            return
        timeout = self.handler.settings().connection_timeout_s
        pending = PendingStart(
            id_tag,
            self.now() + timedelta(seconds=timeout),
            TxTrigger.REMOTE_START,
            remote_start_id,
            profile,
            profile_raw,
        )
        self.core.authorize_start(connector_id, pending, self.now())

    async def status_sequence(
        self,
        statuses: Sequence[str],
        make_item: Callable[[str], OutboxItem],
        *,
        start_at: datetime | None = None,
        step_s: float = 10.0,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        """Simulate a long-running job (firmware, log upload) reporting each status in turn."""
        if start_at is not None:
            await self.clock.sleep_until(start_at)
        for i, status in enumerate(statuses):
            if i:
                await self.clock.sleep(step_s)
            if on_status is not None:
                on_status(status)
            self.enqueue(make_item(status))

    def set_fault(self, connector_id: int, faulted: bool = True) -> None:
        self.core.set_fault(connector_id, faulted, self.now())

    def connector(self, connector_id: int) -> ConnectorSnapshot:
        """What a connector is doing now: state, drawn current/power, offered limit, energy."""
        return self.core.snapshot(connector_id)

    def phase_currents(self) -> tuple[float, float, float]:
        """Ground truth: what the station draws right now on its own L1, L2, L3 (A), all connectors together."""
        return self.core.phase_currents()

    def snapshot(self) -> StationSnapshot:
        counters = self.core.counters
        conns = tuple(self.core.snapshot(cid) for cid in self.core.connectors)
        return StationSnapshot(
            identity=self.identity,
            protocol=self.protocol,
            connected=self.connected,
            booted=self.booted,
            connectors=conns,
            queued_messages=self.outbox.persistent_count,
            sessions_started=counters.started,
            sessions_completed=counters.completed,
            energy_wh=counters.completed_wh + sum(c.session_energy_wh for c in conns),
        )

    def refresh(self) -> None:
        """Re-evaluate limits now (after a profile or availability change)."""
        now = self.now()
        self.core.advance(now)
        self.core.recompute(now)
        self.core.sync_statuses()

    # -- messaging -------------------------------------------------------------------------------

    async def call(self, payload: Any) -> Any:
        """Send a CALL directly (bypassing the queue); raises on CALLERROR, timeout or no connection."""
        return await self.link.call(payload)

    async def send_boot(self) -> None:
        await self.link.send_boot()

    async def send_heartbeat(self) -> None:
        await self.link.send_heartbeat()

    def restart_heartbeat(self) -> None:
        self.link.restart_heartbeat()

    def enqueue(self, item: OutboxItem | None) -> None:
        """Queue a message: persistent ones always, volatile ones only while connected."""
        if item is None:
            return
        if self._deferred is not None:
            self._deferred.append(item)
        elif item.persistent or self.connected:
            item.offline = not self.connected
            self.outbox.put(item)

    def after_reply(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` once the answer to the CSMS call being handled has been sent."""
        self._followups.append(coro)

    def after_reply_call(self, fn: Callable[..., object], *args: Any) -> None:
        """`after_reply` for a synchronous function."""

        async def run() -> None:
            fn(*args)

        self.after_reply(run())

    def defer_messages(self) -> None:
        """Hold messages caused by a CSMS call until its answer is sent (see `flush_followups`)."""
        self._deferred = []

    def flush_followups(self) -> None:
        """Release held messages and start follow-ups; called after each inbound frame is handled."""
        deferred, self._deferred = self._deferred or [], None
        for item in deferred:
            self.enqueue(item)
        pending, self._followups = self._followups, []
        for coro in pending:
            self.spawn(coro)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task that is kept referenced and whose failure is recorded."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.note(f"task failed: {task.exception()!r}")

    def note(self, message: str) -> None:
        """Record a problem (tests assert `errors == []`) and log it."""
        LOG.warning("%s: %s", self.identity, message)
        self.errors.append(message)

    def _on_core_event(self, event: CoreEvent) -> None:
        for item in self.handler.event_items(event):
            self.enqueue(item)

    # -- background loops ------------------------------------------------------------------------

    async def _physics_loop(self) -> None:
        while True:
            await self.clock.sleep(self.tick_s)
            self.core.step(self.now())
            if self._reset_when_idle and not self.core.sessions():
                self._reset_when_idle = False
                await self.reboot()

    def request_reset(self, hard: bool, when_idle: bool = False) -> bool:
        """Reset: stop sessions and reboot now, or (when_idle) after they end. True if deferred."""
        if when_idle and self.core.sessions():
            self._reset_when_idle = True
            return True
        reason = StopReason.HARD_RESET if hard else StopReason.SOFT_RESET
        for c in list(self.core.connectors.values()):
            if c.session is not None:
                self.core.end_transaction(c.connector_id, self.now(), reason, TxTrigger.RESET)
        self.spawn(self._reset_after_flush())
        return False

    async def _reset_after_flush(self) -> None:
        try:
            await asyncio.wait_for(self.outbox.wait_empty(), self.response_timeout)
        except TimeoutError:
            pass
        await self.reboot()


def _make_handler(station: SimStation, connectors: int) -> ProtocolHandler:
    # Imported here: the adapters import this module for typing.
    if station.protocol is Protocol.V16:
        from simulator.v16 import V16Handler

        return V16Handler(station, connectors)
    from simulator.v201 import V201Handler

    return V201Handler(station, connectors)
