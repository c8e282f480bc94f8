"""The OCPP websocket listener: identity from the URL, subprotocol negotiation, one session per connection."""

from __future__ import annotations

import http
import re
from collections.abc import Sequence
from urllib.parse import unquote

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.config import OcppSettings
from csms.domain.stations import RegistrationStatus, StationId, is_valid_identity
from csms.protocol.dispatch import ADAPTERS
from csms.protocol.versions import SUPPORTED_SUBPROTOCOLS, OcppVersion, select_version
from csms.runtime.metrics import Metrics
from csms.runtime.registry import SessionRegistry
from csms.runtime.session import Clock, StationSession
from csms.service.charger import ChargerService

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
    ) -> None:
        self._settings = settings
        self._service = service
        self._registry = registry
        self._clock = clock
        self._metrics = metrics
        self._server: Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        return port

    async def start(self) -> None:
        deflate = ServerPerMessageDeflateFactory(
            server_max_window_bits=self._settings.deflate_window_bits,
            client_max_window_bits=self._settings.deflate_window_bits,
            compress_settings={"memLevel": self._settings.deflate_mem_level},
            # Without context takeover the zlib state is freed after every message, so an idle charger
            # holds none (~20 kB less each); the price is a fresh dictionary per message.
            server_no_context_takeover=not self._settings.deflate_context_takeover,
            client_no_context_takeover=not self._settings.deflate_context_takeover,
        )
        self._server = await serve(
            self._handle,
            self._settings.host,
            self._settings.port,
            subprotocols=[Subprotocol(name) for name in SUPPORTED_SUBPROTOCOLS],
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            compression=None,
            extensions=[deflate],
            max_size=self._settings.max_frame_bytes,
            ping_interval=self._settings.ping_interval,
            ping_timeout=self._settings.ping_timeout,
            server_header="csms",
        )
        log.info("OCPP listening", host=self._settings.host, port=self.port, path=self._settings.path)

    async def close(self) -> None:
        """Stop accepting, close every charger connection with 1001 (going away) and wait for them."""
        if self._server is None:
            return
        self._server.close(close_connections=True)
        await self._server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        try:
            identity_from_path(request.path, self._settings.path)
        except IdentityError as exc:
            log.warning("connection refused", path=request.path[:200], reason=str(exc))
            self._metrics.refused.inc()
            return connection.respond(exc.status, f"{exc}\n")
        return None

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
        )
        await self._registry.attach(session)
        self._metrics.connected.inc()
        log.info("station connected", station_id=identity, ocpp=version.value, session=session.number)
        try:
            await session.serve()
        finally:
            self._registry.detach(session)
            self._metrics.connected.dec()
            log.info(
                "station disconnected",
                station_id=identity,
                session=session.number,
                code=connection.close_code,
            )


def _offered(headers: Headers) -> str:
    return ", ".join(headers.get_all("Sec-WebSocket-Protocol")) or "none"
