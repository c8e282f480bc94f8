"""The TLS context of the OCPP TLS listener (security profiles 2 and 3).

TLS 1.2 or newer only (A00.FR.312-.314; 2.0.1 bans 1.0/1.1) unless 1.6 legacy stations are listed (A00.FR.324,
opt-in: then 1.0/1.1 too, decided per station before the upgrade), the suites of A00.FR.317 (an RSA and an optional
ECDSA server certificate: ECDHE_ECDSA_* needs the latter, TLS_RSA_* the former), no compression (.320). With a
client CA configured, client certificates are requested and, when sent, verified by OpenSSL (chain and validity
period, .403/.407); a station whose certificate fails never gets past the TLS handshake. The subject (O and CN) is
checked later, before the websocket upgrade, where the identity is known.
"""

from __future__ import annotations

import re
import ssl
import sys
import warnings
from asyncio.sslproto import SSLProtocol
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from csms.config import SecuritySettings
from csms.errors import ConfigError

__all__ = ["HandshakeFailed", "HandshakeFailure", "server_context"]

# A00.FR.324: the one suite a 1.6 legacy station gets on TLS 1.0/1.1 (TLS_RSA_WITH_AES_128_CBC_SHA). OpenSSL 3 only
# negotiates TLS 1.0/1.1 at security level 0 (their handshake signs with SHA-1).
_LEGACY_SUITE = "AES128-SHA"
_LEGACY_SECURITY_LEVEL = "@SECLEVEL=0"

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME (x509_vfy.h, since 1.1.0): verify without checking validity periods.
# Python's ssl module passes any flag bits to X509_VERIFY_PARAM_set_flags but names only a few.
_X509_V_FLAG_NO_CHECK_TIME = 0x200000


@dataclass(frozen=True, slots=True)
class HandshakeFailure:
    """Why a TLS handshake failed (e.g. "certificate has expired", "HTTP_REQUEST"), and from where.

    ``path`` is the request path when the peer spoke plain HTTP to the TLS port (it names the station).
    Either may be None when it could not be found (see :func:`_peer_of_handshake`).
    """

    reason: str
    remote_ip: str | None = None
    path: str | None = None


HandshakeFailed = Callable[[HandshakeFailure], None]
# The request line of plain HTTP sent to the TLS port: "GET /ocpp/CP-1 HTTP/1.1".
_HTTP_REQUEST_LINE = re.compile(rb"^[A-Z]{3,10} (/[^ \r\n]{0,300}) HTTP/1\.[01]\r?\n")


def server_context(settings: SecuritySettings, on_failure: HandshakeFailed) -> ssl.SSLContext:
    """The server-side context for ``settings``.

    Raises:
        ConfigError: naming the key of a missing or unreadable certificate, key or CA file.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ciphers = settings.tls_ciphers
    if settings.tls_legacy_v16_stations:
        # Last in the list, and the server's preference wins: a TLS 1.2 client still gets an AEAD suite. Which
        # station may stay below TLS 1.2 is decided after the handshake, when its identity is known.
        with warnings.catch_warnings():
            # Python deprecates TLS 1.0/1.1 (so do we): this is the opt-in of A00.FR.324, documented with its risk.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
        ciphers = f"{ciphers}:{_LEGACY_SUITE}:{_LEGACY_SECURITY_LEVEL}"
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError:
        message = f"invalid config key 'security.tls_ciphers': no usable cipher in {settings.tls_ciphers!r}"
        raise ConfigError(message) from None
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        raise ConfigError(
            "invalid config key 'security.tls_cert_file': security.tls_cert_file and security.tls_key_file "
            "are required when security.tls_port is set"
        )
    _load_chain(context, settings.tls_cert_file, settings.tls_key_file, "security.tls_cert_file")
    if settings.tls_ecdsa_cert_file is not None:
        key = settings.tls_ecdsa_key_file or settings.tls_ecdsa_cert_file
        _load_chain(context, settings.tls_ecdsa_cert_file, key, "security.tls_ecdsa_cert_file")
    if settings.tls_client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=settings.tls_client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"invalid config key 'security.tls_client_ca_file': {exc}") from None
        # Optional: profile 2 stations on the same port send none; profile 3 is checked before the upgrade.
        context.verify_mode = ssl.CERT_OPTIONAL
    if settings.tls_client_crl_file is not None:
        if settings.tls_client_ca_file is None:
            raise ConfigError("invalid config key 'security.tls_client_crl_file': it needs security.tls_client_ca_file")
        try:
            context.load_verify_locations(cafile=settings.tls_client_crl_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"invalid config key 'security.tls_client_crl_file': {exc}") from None
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    if settings.tls_accept_expired_client_certificates:
        if settings.tls_client_ca_file is None:
            raise ConfigError(
                "invalid config key 'security.tls_accept_expired_client_certificates': "
                "it needs security.tls_client_ca_file"
            )
        # A00.FR.430 (2.0.1): accepting expired station certificates is the CSMS's choice; off by default.
        context.verify_flags |= _X509_V_FLAG_NO_CHECK_TIME
    context.sslobject_class = _audited(on_failure)
    return context


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path, name: str) -> None:
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"invalid config key '{name}': cannot load {cert} with key {key}: {exc}") from None


def _audited(on_failure: HandshakeFailed) -> type[ssl.SSLObject]:
    """An SSLObject that reports failed handshakes: asyncio drops them silently (or as a debug-mode error
    without the reason), and a refused certificate is a security event."""

    class AuditedSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                remote_ip, path = _peer_of_handshake()
                on_failure(HandshakeFailure(_reason(exc), remote_ip, path))
                raise

    return AuditedSSLObject


def _reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"client certificate refused: {exc.verify_message}"
    return str(exc.reason or exc)


def _peer_of_handshake() -> tuple[str | None, str | None]:
    """The failing connection's peer IP and, when it sent plain HTTP, its request path.

    OpenSSL's object knows neither; asyncio's SSLProtocol, which calls ``do_handshake``, holds the transport (with
    the peer address) and the bytes it just read. It is found on the calling frames, on this failure path only.
    Any other caller or a changed asyncio yields (None, None): the event is then stored without them.
    """
    frame = sys._getframe(2)
    for _ in range(3):
        owner = frame.f_locals.get("self")
        if isinstance(owner, SSLProtocol):
            return _peer_ip(owner), _plain_http_path(owner)
        if frame.f_back is None:
            break
        frame = frame.f_back
    return None, None


def _peer_ip(protocol: SSLProtocol) -> str | None:
    transport = getattr(protocol, "_transport", None)
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def _plain_http_path(protocol: SSLProtocol) -> str | None:
    buffer = getattr(protocol, "_ssl_buffer", None)
    if not isinstance(buffer, bytearray):
        return None
    match = _HTTP_REQUEST_LINE.match(bytes(buffer[:400]))
    return match.group(1).decode("ascii", "replace") if match else None
