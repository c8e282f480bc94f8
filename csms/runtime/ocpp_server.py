"""The OCPP websocket listeners: identity from the URL, credentials checked before the upgrade (a plain port for
security profiles 0/1 and an optional TLS port for 2/3), subprotocol negotiation, one session per connection."""

from __future__ import annotations

import asyncio
import functools
import gc
import http
import math
import re
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.config import OcppSettings, SecuritySettings
from csms.domain.security import Listener, SecurityEventKind, Subject
from csms.domain.stations import RegistrationStatus, StationId, is_valid_identity
from csms.protocol.dispatch import ADAPTERS
from csms.protocol.versions import SUPPORTED_SUBPROTOCOLS, OcppVersion, select_version
from csms.runtime.connection import with_send_timeout
from csms.runtime.fail_point import FailPoint
from csms.runtime.metrics import Metrics
from csms.runtime.registry import SessionRegistry
from csms.runtime.session import Clock, StationSession
from csms.runtime.tls import HandshakeFailure, server_context
from csms.service.charger import ChargerService
from csms.service.station_security import ConnectAttempt, Refusal, StationSecurityService

__all__ = ["OcppServer"]

log = structlog.get_logger(__name__)

# RFC 6455 §7.4.1: 1002 = protocol error; used when no OCPP version could be agreed.
CLOSE_NO_SUBPROTOCOL = 1002

# A '%' that does not start an escape: unquote() keeps it literally, so "CP%ZZ" became the identity "CP%ZZ",
# the same station as the correctly encoded "CP%25ZZ". RFC 3986 §2.1 allows '%' only as "%" HEXDIG HEXDIG.
_BAD_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class IdentityError(ValueError):
    def __init__(self, status: http.HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def identity_from_path(raw_path: str, prefix: str) -> StationId:
    """The charging station identity from the request path ``{prefix}/{percent-encoded identity}``.

    The path is raw: split on '/' before unquoting so an encoded '/' cannot change the route.
    """
    path = raw_path.split("?", 1)[0]
    base = prefix.rstrip("/") + "/"
    if not path.startswith(base):
        raise IdentityError(http.HTTPStatus.NOT_FOUND, f"OCPP endpoint is {base}<identity>")
    encoded = path[len(base) :]
    if not encoded or "/" in encoded:
        raise IdentityError(http.HTTPStatus.NOT_FOUND, f"OCPP endpoint is {base}<identity>")
    if _BAD_PERCENT_ESCAPE.search(encoded):
        raise IdentityError(http.HTTPStatus.BAD_REQUEST, "identity is not validly percent-encoded")
    try:
        identity = unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise IdentityError(http.HTTPStatus.BAD_REQUEST, "identity is not valid UTF-8") from None
    if not is_valid_identity(identity):
        raise IdentityError(
            http.HTTPStatus.BAD_REQUEST,
            "identity must be 1-48 characters without ':', '/', spaces or controls",
        )
    return StationId(identity)


class OcppServer:
    def __init__(
        self,
        settings: OcppSettings,
        service: ChargerService,
        registry: SessionRegistry,
        clock: Clock,
        metrics: Metrics,
        security: StationSecurityService,
        security_settings: SecuritySettings,
        fail_point: FailPoint | None = None,
    ) -> None:
        self._settings = settings
        self._fail_point = fail_point
        self._service = service
        self._registry = registry
        self._clock = clock
        self._metrics = metrics
        self._security = security
        self._security_settings = security_settings
        self._server: Server | None = None
        self._tls_server: Server | None = None
        self._audits: set[asyncio.Task[None]] = set()
        self._collection: asyncio.TimerHandle | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        return port

    @property
    def tls_port(self) -> int | None:
        """The TLS listener's port (profiles 2 and 3), None when security.tls_port is not set."""
        if self._tls_server is None:
            return None
        port: int = next(iter(self._tls_server.sockets)).getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await self._listen(self._settings.host, self._settings.port, Listener.PLAIN, None)
        log.info("OCPP listening", host=self._settings.host, port=self.port, path=self._settings.path)
        security = self._security_settings
        if security.tls_port is not None:
            context = server_context(security, self._tls_failed)
            host = security.tls_host or self._settings.host
            self._tls_server = await self._listen(host, security.tls_port, Listener.TLS, context)
            log.info("OCPP TLS listening", host=host, port=self.tls_port, path=self._settings.path)

    async def _listen(self, host: str, port: int, listener: Listener, context: ssl.SSLContext | None) -> Server:
        deflate = ServerPerMessageDeflateFactory(
            server_max_window_bits=self._settings.deflate_window_bits,
            client_max_window_bits=self._settings.deflate_window_bits,
            compress_settings={"memLevel": self._settings.deflate_mem_level},
            # Without context takeover the zlib state is freed after every message, so an idle charger
            # holds none (~20 kB less each); the price is a fresh dictionary per message.
            server_no_context_takeover=not self._settings.deflate_context_takeover,
            client_no_context_takeover=not self._settings.deflate_context_takeover,
        )
        return await serve(
            self._handle,
            host,
            port,
            ssl=context,
            subprotocols=[Subprotocol(name) for name in SUPPORTED_SUBPROTOCOLS],
            select_subprotocol=self._select_subprotocol,
            process_request=functools.partial(self._process_request, listener),
            compression=None,
            extensions=[deflate],
            max_size=self._settings.max_frame_bytes,
            ping_interval=self._settings.ping_interval,
            ping_timeout=self._settings.ping_timeout,
            open_timeout=self._settings.open_timeout,
            close_timeout=self._settings.close_timeout,
            write_limit=self._settings.write_limit,
            max_queue=self._settings.max_queue,
            create_connection=with_send_timeout(self._settings.send_timeout),
            server_header="csms",
        )

    async def close(self) -> None:
        """Stop accepting, close every charger connection with 1001 (going away) and wait for them."""
        for server in (self._server, self._tls_server):
            if server is not None:
                server.close(close_connections=True)
                await server.wait_closed()
        if self._audits:
            await asyncio.gather(*self._audits, return_exceptions=True)

    async def _process_request(
        self, listener: Listener, connection: ServerConnection, request: Request
    ) -> Response | None:
        try:
            identity = identity_from_path(request.path, self._settings.path)
        except IdentityError as exc:
            log.warning("connection refused", path=request.path[:200], reason=str(exc))
            self._metrics.refused.inc()
            return connection.respond(exc.status, f"{exc}\n")
        authorization = request.headers.get_all("Authorization")
        attempt = ConnectAttempt(
            identity,
            listener,
            _remote_ip(connection),
            authorization[0] if len(authorization) == 1 else None,
            _client_subject(connection) if listener is Listener.TLS else None,
            _offered_version(request.headers),
            _client_not_after(connection) if listener is Listener.TLS else None,
            _tls_version(connection) if listener is Listener.TLS else None,
        )
        outcome = await self._security.admit(attempt)
        if not isinstance(outcome, Refusal):
            return None
        self._metrics.refused.inc()
        response = connection.respond(outcome.status, f"{outcome.message}\n")
        if outcome.status == http.HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        if outcome.retry_after is not None:
            response.headers["Retry-After"] = str(math.ceil(outcome.retry_after))
        return response

    def _tls_failed(self, failure: HandshakeFailure) -> None:
        # Called inside OpenSSL's handshake on the loop's thread: store the event without blocking it.
        identity: StationId | None = None
        detail = failure.reason
        if failure.path is not None:
            # Plain HTTP (e.g. ws:// instead of wss://) to the TLS port: its path names the station, if valid.
            detail = f"{failure.reason}: plain HTTP request for {failure.path[:100]} on the TLS port"
            try:
                identity = identity_from_path(failure.path, self._settings.path)
            except IdentityError:
                identity = None
        task = asyncio.get_running_loop().create_task(
            self._security.record(SecurityEventKind.TLS_HANDSHAKE_FAILED, identity, failure.remote_ip, detail)
        )
        self._audits.add(task)
        task.add_done_callback(self._audits.discard)

    def _select_subprotocol(self, connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        # None completes the handshake without a subprotocol header; the handler then closes (OCPP-J §3.1.2).
        version = select_version(offered)
        return Subprotocol(version.subprotocol) if version else None

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        identity = identity_from_path(connection.request.path, self._settings.path)
        if connection.subprotocol is None:
            log.warning(
                "no OCPP subprotocol agreed",
                station_id=identity,
                offered=_offered(connection.request.headers),
            )
            self._metrics.refused.inc()
            await connection.close(CLOSE_NO_SUBPROTOCOL, "no supported OCPP subprotocol: use ocpp2.0.1 or ocpp1.6")
            return
        version = OcppVersion(connection.subprotocol.removeprefix("ocpp"))
        registration = self._service.registration(identity)
        session = StationSession(
            connection,
            identity,
            ADAPTERS[version],
            self._service,
            self._clock,
            self._settings.call_timeout,
            accepted=registration is RegistrationStatus.ACCEPTED,
            fail_point=self._fail_point,
        )
        old = self._registry.get(identity)
        if old is not None:
            # Only an admitted connection gets here: a duplicate with wrong credentials was refused before the
            # upgrade and never touches the live session.
            await self._security.replaced(identity, _remote_ip(connection), old.number)
        await self._registry.attach(session)
        self._metrics.connected.inc()
        log.info("station connected", station_id=identity, ocpp=version.value, session=session.number)
        try:
            await session.serve()
        finally:
            if connection.protocol.parser_exc is not None:
                _drop_parser_traceback(connection)
                self._collect_soon()
            self._registry.detach(session)
            self._metrics.connected.dec()
            log.info(
                "station disconnected",
                station_id=identity,
                session=session.number,
                code=connection.close_code,
            )

    def _collect_soon(self) -> None:
        """One collection of the young generations a second after a connection whose frame parser failed.

        websockets' protocol and its parser generator reference each other, so a closed connection is freed only
        by the garbage collector, which the server runs rarely (``tune_garbage_collector``); a connection ended by
        a bad frame can still hold the unparsed rest of it (a deflate bomb: ~0.25 MiB). Coalesced: an attacker
        sending bombs back to back gets one collection a second, not one each.
        """
        if self._collection is None:
            self._collection = asyncio.get_running_loop().call_later(1.0, self._collect)

    def _collect(self) -> None:
        self._collection = None
        gc.collect(1)


def _drop_parser_traceback(connection: ServerConnection) -> None:
    """Let a connection whose frame parser failed be freed by reference counting.

    websockets keeps the exception that stopped its parser (e.g. PayloadTooBig for a deflate bomb) on the protocol;
    the traceback's frames hold the protocol again and the data being parsed (up to ``max_frame_bytes``, inflated,
    and the masked copy): a reference cycle of ~1.5 MiB. Under the server's sparse garbage collection
    (``tune_garbage_collector``) such cycles wait for a rare full collection, so repeated bombs grew RSS without
    bound (1.6 MiB each, measured in ``tests/hostile/test_bomb_memory.py``). The exception itself stays readable.
    """
    failure = connection.protocol.parser_exc
    if failure is not None:
        failure.__traceback__ = None


def _remote_ip(connection: ServerConnection) -> str | None:
    address: Any = connection.remote_address
    return str(address[0]) if isinstance(address, tuple) and address else None


def _client_subject(connection: ServerConnection) -> Subject | None:
    """The subject of the client certificate OpenSSL verified in the handshake, None if none was sent."""
    certificate = connection.transport.get_extra_info("peercert")
    if not certificate:
        return None
    subject: Subject = certificate.get("subject", ())
    return subject


def _offered(headers: Headers) -> str:
    return ", ".join(headers.get_all("Sec-WebSocket-Protocol")) or "none"


def _offered_version(headers: Headers) -> str | None:
    """The OCPP version the handshake will select (as _select_subprotocol does), to apply its identity rules
    before the upgrade; None when no supported subprotocol is offered (the connection is then closed with 1002)."""
    offered: list[str] = []
    try:
        for value in headers.get_all("Sec-WebSocket-Protocol"):
            offered += parse_subprotocol(value)
    except InvalidHeader:
        return None  # websockets refuses the handshake itself
    version = select_version(offered)
    return version.value if version else None


def _client_not_after(connection: ServerConnection) -> datetime | None:
    """When the verified client certificate's validity period ends (None without one, or unreadable)."""
    certificate = connection.transport.get_extra_info("peercert")
    not_after = certificate.get("notAfter") if certificate else None
    if not isinstance(not_after, str):
        return None
    try:
        return datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    except ValueError:
        return None


def _tls_version(connection: ServerConnection) -> str | None:
    ssl_object = connection.transport.get_extra_info("ssl_object")
    version = ssl_object.version() if ssl_object is not None else None
    return version if isinstance(version, str) else None
