"""Process wiring: one event loop, the OCPP listener and the HTTP API, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import structlog
import uvicorn

from csms.api.app import create_app
from csms.api.context import ApiContext
from csms.config import Settings
from csms.domain.ev_charging import ChargingNeeds
from csms.domain.grid import Priority
from csms.domain.pricing import PriceQuoter
from csms.domain.stations import RegistrationStatus
from csms.domain.transactions import Transaction
from csms.runtime.bookings import BookingTimers
from csms.runtime.fail_point import fail_point_from_environment
from csms.runtime.metrics import Metrics
from csms.runtime.ocpp_server import OcppServer
from csms.runtime.registry import SessionRegistry
from csms.runtime.session import Clock
from csms.runtime.session_rules import SessionRulesLoop
from csms.runtime.smart_charging import SmartChargingLoop
from csms.service.accounts import AccountPriorities, AccountService
from csms.service.analytics import AnalyticsService
from csms.service.availability import AvailabilityService
from csms.service.bookings import BookingService, SessionSource
from csms.service.charger import ChargerService, StationPolicy
from csms.service.commands import CommandService
from csms.service.connectors import ConnectorSpecService
from csms.service.events import EventBus
from csms.service.grid import GridService
from csms.service.live import LiveServices, StreamHub
from csms.service.live_events import ChargerEvents, EventLog
from csms.service.session_rules import SessionRulesService
from csms.service.smart_charging import SmartChargingService
from csms.service.station_security import StationSecurityService
from csms.service.tariffs import TariffService
from csms.storage.availability import AnalyticsReader
from csms.storage.engine import checkpoint, create_engine, create_writer_engine, is_sqlite, migrate
from csms.storage.sql import SqlStorage
from csms.storage.tariffs import TariffStore
from csms.storage.writer import GroupCommitWriter

__all__ = ["CentralSystem", "run", "utc_now"]

log = structlog.get_logger(__name__)


API_KEEP_ALIVE_SECONDS = 75


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections for a long-running server with many live connections.

    Everything built at start-up (modules, compiled validators, routes) is moved out of the collector's sight,
    and the youngest generation is collected after 50,000 allocations instead of 700: with a thousand
    chargers in flight the default thresholds spent a tenth of the event loop's time in collection
    (py-spy); reference cycles are still collected, only in larger steps.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def utc_now() -> datetime:
    return datetime.now(UTC)


class _ApiServer(uvicorn.Server):
    # We own SIGINT/SIGTERM for the whole process; uvicorn must not install (and later re-raise) its own.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class CentralSystem:
    """Everything one CSMS process runs. ``start`` returns once both listeners accept connections."""

    def __init__(self, settings: Settings, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = Metrics()
        self.registry = SessionRegistry()
        self.metrics.sessions.set_function(lambda: len(self.registry))
        database = settings.database
        self.engine = create_engine(database.url, database.synchronous)
        # Without fsync on commit, committing on the loop's thread is cheapest; WAL checkpoints (which do
        # write the database file) then run on a thread of their own connection. A PostgreSQL commit waits for
        # the server (and its fsync), so it always runs on the writer thread.
        inline = database.synchronous == "normal" and is_sqlite(database.url)
        checkpoint_engine = create_writer_engine(database.url, database.synchronous)
        self.writer = GroupCommitWriter(
            create_writer_engine(database.url, database.synchronous, checkpoints=not inline),
            database.max_batch,
            inline=inline,
            checkpoint=functools.partial(checkpoint, checkpoint_engine) if inline else None,
            checkpoint_interval=database.checkpoint_interval,
        )
        self._checkpoint_engine = checkpoint_engine
        self.storage = SqlStorage(self.engine, self.writer)
        # A changed limit, window, wiring or unmanaged load re-plans (debounced by the loop).
        self.grid = GridService(self.storage, on_change=self._grid_changed)
        # What changed (statuses, sessions, bookings), for live API streams.
        self.events = EventBus()
        # Plug, power and bookability per connector (defaults from the wiring).
        self.connector_specs = ConnectorSpecService(self.storage, self.grid)
        self.events = EventBus(settings.live.stream_queue)
        self.event_log = EventLog(self.events, settings.live.replay_events)
        self.streams = StreamHub(self.events)
        self.charger_events: ChargerEvents | None = None
        self.smart: SmartChargingService | None = None
        self.smart_loop: SmartChargingLoop | None = None
        # The tariff service unless set before start; bookings store the price it quotes.
        self.price_quoter: PriceQuoter | None = None
        self.bookings: BookingService | None = None
        self.booking_timers: BookingTimers | None = None
        self.tariffs: TariffService | None = None
        self.session_rules: SessionRulesService | None = None
        self.session_rules_loop: SessionRulesLoop | None = None
        self._api_server: _ApiServer | None = None
        self._api_task: asyncio.Task[None] | None = None
        self.ocpp: OcppServer | None = None
        self.security: StationSecurityService | None = None
        # Who may call the HTTP API (accounts, roles, hashed API keys).
        self.accounts = AccountService(self.storage, clock)

    @property
    def ocpp_port(self) -> int:
        assert self.ocpp is not None
        return self.ocpp.port

    @property
    def ocpp_tls_port(self) -> int | None:
        """The OCPP TLS listener's port (security profiles 2 and 3), None without one."""
        assert self.ocpp is not None
        return self.ocpp.tls_port

    @property
    def api_port(self) -> int:
        assert self._api_server is not None
        port: int = self._api_server.servers[0].sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        await migrate(self.engine)
        self.writer.start()
        policy = StationPolicy(
            auto_register=self.settings.stations.auto_register,
            unknown_station_status=RegistrationStatus(self.settings.stations.unknown_station_status.value),
            heartbeat_interval=self.settings.ocpp.heartbeat_interval,
            allow_unknown_tokens=self.settings.stations.allow_unknown_tokens,
        )
        chargers = ChargerService(self.storage, policy)
        await chargers.load()
        commands = CommandService(self.storage, self.registry)
        await self.grid.load()
        await self.connector_specs.load()
        self.smart = SmartChargingService(self.settings.smart_charging, self.grid, commands, self.clock, self.storage)
        await self.smart.load(chargers.active())
        self.smart_loop = SmartChargingLoop(self.smart, self.settings.smart_charging, self.clock)
        chargers.observe(self.smart)
        # A session of a fleet or urgent driver's token charges at the account's priority (a booking's wins).
        await self.accounts.load()
        chargers.observe(AccountPriorities(self.accounts, _token_owner(chargers), self._account_priority))
        reader = AnalyticsReader(self.engine)
        self.charger_events = ChargerEvents(self.events, self.grid, self.storage, reader)
        chargers.observe(self.charger_events)
        self.registry.listen(self._station_connection)
        self.charger_events.start()
        live = LiveServices(
            settings=self.settings.live,
            availability=AvailabilityService(
                reader, chargers, self.grid, self._online, self.smart, self.connector_specs
            ),
            analytics=AnalyticsService(reader, self.grid),
            log=self.event_log,
            streams=self.streams,
        )
        # Tariffs, quotes, session rules (time limit, overstay) and session costs.
        money_reads = TariffStore(self.engine)
        self.tariffs = TariffService(self.storage, money_reads, self.grid, self.settings.tariffs)
        await self.tariffs.load()
        if self.price_quoter is None:
            self.price_quoter = self.tariffs  # bookings store the price quoted at booking time
        self.session_rules = SessionRulesService(
            self.storage, money_reads, self.tariffs, self.grid, commands, self.events, self.settings.tariffs
        )
        await self.session_rules.load(chargers.active())
        self.session_rules_loop = SessionRulesLoop(self.session_rules, self.settings.tariffs, self.clock)
        chargers.observe(self.session_rules)
        chargers.observe_authorizations(self.session_rules)
        sessions = SessionSource(chargers.active, self._departure, self._booking_needs)
        default_stay = timedelta(hours=self.settings.smart_charging.default_stay_hours)
        self.bookings = BookingService(
            self.settings.bookings,
            self.storage,
            self.grid,
            self.connector_specs,
            commands,
            self.events,
            sessions,
            default_stay,
            self.price_quoter,
        )
        await self.bookings.load()
        self.booking_timers = BookingTimers(self.bookings, self.settings.bookings, self.clock)
        # A booking placed, moved or ended changes the capacity held for it: re-plan.
        self.bookings.bind(self.booking_timers.poke, self._grid_changed)
        self.smart.hold_capacity(self.bookings.holds)
        chargers.observe(self.bookings)  # after smart charging: a booked session's needs go to its session
        chargers.observe_reservations(self.bookings)
        chargers.observe_authorizations(self.bookings)
        self.security = StationSecurityService(
            self.settings.security,
            self.storage,
            self.engine,
            commands,
            is_known=lambda station_id: chargers.registration(station_id) is not None,
            auto_register=self.settings.stations.auto_register,
            clock=self.clock,
            on_password_check=lambda how: self.metrics.password_checks.labels(how).inc(),
        )
        await self.security.load()
        fail_point = fail_point_from_environment(os.environ)
        if fail_point is not None:
            log.warning("kill -9 test hook armed", point=fail_point.point.value, count=fail_point.count)
        self.ocpp = OcppServer(
            self.settings.ocpp,
            chargers,
            self.registry,
            self.clock,
            self.metrics,
            self.security,
            self.settings.security,
            fail_point,
        )
        await self.ocpp.start()
        if self.settings.api.admin_token is None:
            await self.accounts.bootstrap(self.settings.api.bootstrap_key_file)
        context = ApiContext(
            settings=self.settings.api,
            accounts=self.accounts,
            storage=self.storage,
            chargers=chargers,
            commands=commands,
            registry=self.registry,
            metrics=self.metrics,
            clock=self.clock,
            grid=self.grid,
            events=self.events,
            smart_charging=self.smart,
            smart_charging_loop=self.smart_loop,
            connector_specs=self.connector_specs,
            live=live,
            bookings=self.bookings,
            booking_timers=self.booking_timers,
            security=self.security,
            tariffs=self.tariffs,
            session_rules=self.session_rules,
            session_rules_loop=self.session_rules_loop,
        )
        config = uvicorn.Config(
            create_app(context),
            host=self.settings.api.host,
            port=self.settings.api.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            # uvicorn closes an idle keep-alive connection after 5 s, the same as httpx's and many clients' own
            # expiry: a client reusing it just as the server closes it gets a dropped request (ReadError). Keep
            # idle connections longer than clients and load balancers commonly do (60 s), so they close first.
            timeout_keep_alive=API_KEEP_ALIVE_SECONDS,
        )
        self._api_server = _ApiServer(config)
        self._api_task = asyncio.create_task(self._api_server.serve(), name="http-api")
        while not self._api_server.started:
            if self._api_task.done():
                await self._api_task  # re-raises why it could not start (port in use...)
                raise RuntimeError("HTTP API stopped during start-up")
            await asyncio.sleep(0.01)
        log.info("HTTP API listening", host=self.settings.api.host, port=self.api_port)
        self.smart_loop.start()
        self.booking_timers.start()
        self.session_rules_loop.start()

    def _account_priority(self, transaction: Transaction, priority: Priority, reason: str, set_by: str | None) -> None:
        smart = self.smart
        session = smart.session(transaction.station_id, transaction.evse_id) if smart is not None else None
        if smart is None or session is None or session.transaction_id != transaction.id:
            return
        if session.priority_set_by is None:  # nobody chose one for this session yet
            smart.set_needs(transaction.station_id, transaction.evse_id, None, priority, reason, set_by or "account")

    def _departure(self, station_id: str, evse_id: int) -> datetime | None:
        session = self.smart.session(station_id, evse_id) if self.smart is not None else None
        return session.needs.departure if session is not None else None

    def _booking_needs(
        self, station_id: str, evse_id: int, needs: ChargingNeeds, priority: Priority, reason: str
    ) -> None:
        """A booked session: its energy, departure (the slot's end) and priority go to smart charging."""
        if self.smart is None:
            return
        session = self.smart.session(station_id, evse_id)
        if session is not None:
            needs = replace(
                session.needs,
                energy_wh=needs.energy_wh if needs.energy_wh is not None else session.needs.energy_wh,
                departure=needs.departure or session.needs.departure,
            )
        self.smart.set_needs(station_id, evse_id, needs, priority, reason, set_by="bookings")

    def _online(self, station_id: str) -> bool:
        return self.registry.get(station_id) is not None

    def _station_connection(self, station_id: str, connected: bool) -> None:
        if self.charger_events is not None:
            self.charger_events.station_connection(station_id, connected, self.clock())
        if connected and self.session_rules is not None:
            self.session_rules.station_connected(station_id)  # many 1.6 chargers reconnect without a boot

    def _grid_changed(self) -> None:
        if self.smart_loop is not None:
            self.smart_loop.request_replan()

    async def stop(self) -> None:
        """Close charger connections with 1001, stop the API, commit what is queued, release the database."""
        if self.booking_timers is not None:
            await _step("booking timers", self.booking_timers.stop())
        if self.smart_loop is not None:
            await _step("smart-charging loop", self.smart_loop.stop())
        if self.session_rules_loop is not None:
            await _step("session-rules loop", self.session_rules_loop.stop())
        if self.ocpp is not None:
            await _step("OCPP listener", self.ocpp.close())
        # Open event streams would keep the HTTP server from stopping.
        self.streams.close_all()
        if self._api_server is not None and self._api_task is not None:
            self._api_server.should_exit = True
            await _step("HTTP API", self._api_task)
        if self.charger_events is not None:
            await _step("live events", self.charger_events.stop())
        await _step("database writer", self.writer.close())
        if self.security is not None:
            self.security.close()
        self._checkpoint_engine.dispose()
        await self.engine.dispose()
        log.info("stopped")


SLOW_STOP_STEP_S = 10.0


async def _step(name: str, work: Awaitable[None]) -> None:
    """Await one shutdown step. One that takes longer than SLOW_STOP_STEP_S is logged with where every task of
    the loop is waiting, so a shutdown that hangs (in CI, say) tells where instead of only timing out."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=SLOW_STOP_STEP_S)
    if not done:
        log.warning("shutdown step is slow", step=name, seconds=SLOW_STOP_STEP_S, tasks=_where_tasks_wait())
    await task


def _where_tasks_wait() -> list[str]:
    where = []
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=4)
        trail = " < ".join(f"{f.f_code.co_name}@{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno}" for f in frames)
        where.append(f"{task.get_name()}: {trail}")
    return sorted(where)


async def run(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
    system = CentralSystem(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await system.start()
        tune_garbage_collector()
        await stop.wait()
        log.info("shutting down")
    finally:
        await system.stop()


def _token_owner(chargers: ChargerService) -> Callable[[str], str | None]:
    def owner(token: str) -> str | None:
        record = chargers.known_token(token)
        return record.owner if record is not None else None

    return owner
