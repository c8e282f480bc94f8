"""Charger security rules: profiles, password rules per OCPP version, Basic-auth parsing, certificate subjects,
and the auth-failure throttle. Pure: no I/O, no clock reads (``now`` is passed in), no randomness.

References: OCA "Improved security for OCPP 1.6-J" (A00.FR.xxx) and OCPP 2.0.1 part 2 block A with its errata.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import string
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any, TypeVar

__all__ = [
    "MAX_PASSWORD_LENGTH_201",
    "PASSWORD_ALPHABET",
    "BasicCredentials",
    "CredentialError",
    "FailureThrottle",
    "Listener",
    "PasswordEncoding",
    "PendingRotation",
    "Requirement",
    "SecurityEvent",
    "SecurityEventKind",
    "SecurityProfile",
    "StationCredentials",
    "Subject",
    "VerifiedLogins",
    "check_password",
    "is_password_command",
    "parse_basic_auth",
    "redact_secrets",
    "requirement",
    "secret_candidates",
    "subject_problem",
]


class SecurityProfile(IntEnum):
    """OCPP security profiles. 0 is not an OCPP profile: no authentication at all, for development and CI."""

    UNSECURED = 0
    BASIC = 1  # Basic auth over ws://
    TLS_BASIC = 2  # Basic auth over TLS (server certificate only)
    MUTUAL_TLS = 3  # TLS with a client certificate, no password


class Listener(StrEnum):
    """Which OCPP port a connection arrived on: one profile family per port (A00.FR.006 allows that)."""

    PLAIN = "plain"  # ws:// profiles 0 and 1
    TLS = "tls"  # wss:// profiles 2 and 3


class Requirement(StrEnum):
    """What a connection must show before the websocket upgrade."""

    NOTHING = "nothing"
    PASSWORD = "password"
    CERTIFICATE = "certificate"
    WRONG_LISTENER = "wrong-listener"  # the station's profile is not served on this port: refuse (A00.FR.002)


def requirement(profile: SecurityProfile, listener: Listener) -> Requirement:
    """What the station must present on ``listener``. A profile 2/3 station on the plain port is a downgrade
    (A00.FR.005, 1.6 A05.FR.09) and a profile 0/1 station on the TLS port a profile mismatch: both refused."""
    if listener is Listener.PLAIN:
        if profile is SecurityProfile.UNSECURED:
            return Requirement.NOTHING
        return Requirement.PASSWORD if profile is SecurityProfile.BASIC else Requirement.WRONG_LISTENER
    if profile is SecurityProfile.TLS_BASIC:
        return Requirement.PASSWORD
    return Requirement.CERTIFICATE if profile is SecurityProfile.MUTUAL_TLS else Requirement.WRONG_LISTENER


class SecurityEventKind(StrEnum):
    """CSMS-side security events, stored and listed (A00.FR.323/.408 recommend one per security termination)."""

    AUTH_MISSING = "AuthMissing"  # no or an unreadable Authorization header
    USERNAME_MISMATCH = "UsernameMismatch"  # Basic-auth user is not the URL identity
    AUTH_FAILED = "AuthFailed"  # wrong password, or the station has no password set
    THROTTLED = "Throttled"  # too many failures: attempts refused for a while without checking
    UNKNOWN_STATION = "UnknownStation"  # identity not known and auto-registration is off
    IDENTITY_REFUSED = "IdentityRefused"  # the identity is no identifierString (2.0.1, or 1.6 when configured)
    PROFILE_MISMATCH = "ProfileMismatch"  # connected on a port of another profile (downgrade attempt)
    UNSECURED_REFUSED = "UnsecuredRefused"  # profile 0 station while unsecured connections are off
    CERTIFICATE_MISSING = "CertificateMissing"  # profile 3 without a client certificate
    CERTIFICATE_REJECTED = "CertificateRejected"  # client certificate subject is not this station's
    # an expired certificate let in by security.tls_accept_expired_client_certificates (A00.FR.430)
    CERTIFICATE_EXPIRED_ACCEPTED = "CertificateExpiredAccepted"
    TLS_HANDSHAKE_FAILED = "TlsHandshakeFailed"  # TLS refused: old version, unknown CA, expired certificate
    LEGACY_TLS_REFUSED = "LegacyTlsRefused"  # TLS 1.0/1.1 from a station not listed as a 1.6 legacy station
    CONNECTION_REPLACED = "ConnectionReplaced"  # an authenticated duplicate connection took over
    CONNECTION_FLAPPING = "ConnectionFlapping"  # more than 3 replacements of one identity within a minute
    PROFILE_CHANGED = "ProfileChanged"
    PASSWORD_SET = "PasswordSet"
    PASSWORD_ROTATED = "PasswordRotated"  # station answered Accepted: only the new password works now
    PASSWORD_ROTATION_FAILED = "PasswordRotationFailed"  # Rejected or no answer: the old password stays


class PendingRotation(StrEnum):
    """Why a rotated-to password is still valid next to the old one, and which login settles it."""

    # RebootRequired: the station stored the new password and keeps using the old one until it reboots, so only
    # its first login with the new one settles the rotation (the old one is retired then).
    REBOOT_REQUIRED = "RebootRequired"
    # No answer (timeout, the station went away, or the server stopped while waiting): the station may or may not
    # have stored the new password, so its next login settles it: with the new one the old is retired, with the
    # old one the new is dropped.
    UNANSWERED = "Unanswered"


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    at: datetime
    kind: SecurityEventKind
    station_id: str | None
    remote_ip: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class StationCredentials:
    """A station's recorded security profile and password hashes (argon2 strings, never the password)."""

    station_id: str
    profile: SecurityProfile
    password_hash: str | None = None
    # The password being rotated to: valid next to the old one until the station answers (A01.FR.03/.04), or,
    # when its answer leaves that open, until a login settles it (pending_reason).
    pending_hash: str | None = None
    pending_reason: PendingRotation | None = None
    password_set_at: datetime | None = None
    updated_at: datetime | None = None

    def hashes(self) -> tuple[str, ...]:
        return tuple(h for h in (self.password_hash, self.pending_hash) if h is not None)


# -- passwords ------------------------------------------------------------------------------------------------


class CredentialError(ValueError):
    """A password or certificate that breaks the rules; the message says which rule."""


class PasswordEncoding(StrEnum):
    TEXT = "text"  # the password is the text itself (UTF-8 bytes)
    HEX = "hex"  # 1.6 only: the key's bytes written as hex digits


# 2.0.1 passwordString (errata table): identifierString's characters. Valid for 1.6 too, so generated
# passwords and passwords for stations of unknown version use it.
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "*-_=:+|@."
_PASSWORD_201 = re.compile(r"[A-Za-z0-9*\-_=:+|@.]+")
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")
MIN_PASSWORD_LENGTH = 16
MAX_PASSWORD_LENGTH_16 = 20  # bytes (A00.FR.205)
DEFAULT_MAX_PASSWORD_LENGTH_201 = 40  # BasicAuthPassword maxLimit before the 2025 errata
MAX_PASSWORD_LENGTH_201 = 64  # the errata's largest maxLimit


def check_password(
    password: str,
    version: str | None,
    encoding: PasswordEncoding = PasswordEncoding.TEXT,
    max_length: int | None = None,
) -> bytes:
    """The secret bytes a station will send in its Basic-auth header, after checking the version's rules.

    ``version`` is "1.6", "2.0.1", or None when the station's version is not known yet (both rules apply).
    ``max_length`` is a 2.0.1 station's BasicAuthPassword maxLimit (40..64; 40 when not given).

    Raises:
        CredentialError: naming the rule the password breaks.
    """
    if version not in (None, "1.6", "2.0.1"):
        raise CredentialError(f"unknown OCPP version {version!r}: use 1.6 or 2.0.1")
    if encoding is PasswordEncoding.HEX:
        if version == "2.0.1":
            raise CredentialError("2.0.1 BasicAuthPassword is sent as text, never hex: use encoding 'text'")
        if not _HEX.fullmatch(password) or len(password) % 2:
            raise CredentialError("a hex AuthorizationKey must be an even number of hex digits (0-9, a-f)")
        secret = bytes.fromhex(password)
        if not MIN_PASSWORD_LENGTH <= len(secret) <= MAX_PASSWORD_LENGTH_16:
            raise CredentialError(
                f"1.6 AuthorizationKey must be 16..20 bytes (32..40 hex digits), got {len(password)} hex digits"
            )
        return secret
    limit = DEFAULT_MAX_PASSWORD_LENGTH_201 if max_length is None else max_length
    if not DEFAULT_MAX_PASSWORD_LENGTH_201 <= limit <= MAX_PASSWORD_LENGTH_201:
        raise CredentialError(f"max_length (the station's BasicAuthPassword maxLimit) must be 40..64, not {limit}")
    if version != "1.6" and not _PASSWORD_201.fullmatch(password):
        raise CredentialError(
            "2.0.1 BasicAuthPassword (passwordString) may only contain letters, digits and *-_=:+|@."
            + (" (the station's OCPP version is not known yet, so both versions' rules apply)" if not version else "")
        )
    if version == "1.6" and not _PRINTABLE_ASCII.fullmatch(password):
        raise CredentialError("1.6 AuthorizationKey text must be printable ASCII without spaces (or give it as hex)")
    length = len(password.encode())
    if version == "2.0.1":
        if not MIN_PASSWORD_LENGTH <= len(password) <= limit:
            raise CredentialError(f"2.0.1 BasicAuthPassword must be 16..{limit} characters, got {len(password)}")
    elif version == "1.6":
        if not MIN_PASSWORD_LENGTH <= length <= MAX_PASSWORD_LENGTH_16:
            raise CredentialError(
                f"1.6 AuthorizationKey must be 16..20 bytes, got {length} (or 32..40 hex digits with encoding 'hex')"
            )
    elif not MIN_PASSWORD_LENGTH <= length <= MAX_PASSWORD_LENGTH_16:
        raise CredentialError(
            f"password must be 16..20 characters while the station's OCPP version is unknown "
            f"(1.6 allows 16..20 bytes, 2.0.1 16..40 characters), got {length}"
        )
    return password.encode()


def secret_candidates(password: bytes) -> tuple[bytes, ...]:
    """The secrets a Basic-auth password may stand for. 1.6 chargers differ: some send the AuthorizationKey's
    raw bytes, others the hex string they were configured with, so a hex-looking password is also tried decoded."""
    text = password.decode("ascii", errors="replace")
    hex_length = 2 * MIN_PASSWORD_LENGTH <= len(text) <= 2 * MAX_PASSWORD_LENGTH_16 and not len(text) % 2
    if hex_length and _HEX.fullmatch(text):
        return password, bytes.fromhex(text)
    return (password,)


# Configuration keys and device-model variables that hold a station's Basic-auth password.
SECRET_VARIABLES = frozenset({"AuthorizationKey", "BasicAuthPassword"})
REDACTED = "<redacted>"


def redact_secrets(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` (an OCPP request or response) with every password value replaced, for audit records.

    Covers 1.6 ``{"key": "AuthorizationKey", "value": ...}`` entries and 2.0.1 ``setVariableData`` /
    ``getVariableResult`` entries whose variable is ``BasicAuthPassword``, at any depth.
    """
    return {k: _redact(v) for k, v in _redact_entry(payload).items()}


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return redact_secrets(value)
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def _redact_entry(entry: dict[str, Any]) -> dict[str, Any]:
    # 1.6 GetConfiguration asks with {"key": [names]}: only a string key names one variable.
    if _is_secret_name(entry.get("key")) and "value" in entry:
        return {**entry, "value": REDACTED}
    variable = entry.get("variable")
    if isinstance(variable, dict) and _is_secret_name(variable.get("name")) and "attributeValue" in entry:
        return {**entry, "attributeValue": REDACTED}
    return entry


def _is_secret_name(name: object) -> bool:
    return isinstance(name, str) and name in SECRET_VARIABLES


def is_password_command(names: Iterable[str]) -> bool:
    """Whether a configuration change touches a password (which must go through the rotation, or the central
    system would keep checking the old one)."""
    return any(name in SECRET_VARIABLES for name in names)


# -- Basic auth -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    username: str
    password: bytes


def parse_basic_auth(header: str | None) -> BasicCredentials:
    """The user and password of an ``Authorization: Basic`` header. The decoded bytes are split at the first
    ':' (the identity may not contain one, the password may), and the password stays bytes: 1.6 keys may be
    raw binary.

    Raises:
        CredentialError: no header, another scheme, bad base64, no ':' or a user name that is not UTF-8.
    """
    if header is None:
        raise CredentialError("no Authorization header")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise CredentialError("Authorization scheme is not Basic")
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CredentialError("Basic credentials are not valid base64") from None
    user, colon, password = decoded.partition(b":")
    if not colon:
        raise CredentialError("Basic credentials have no ':' between user and password")
    try:
        username = user.decode()
    except UnicodeDecodeError:
        raise CredentialError("Basic-auth user name is not UTF-8") from None
    return BasicCredentials(username, password)


# -- client certificates (profile 3) --------------------------------------------------------------------------

# A subject as ssl.SSLSocket.getpeercert() gives it: a tuple of RDNs, each a tuple of (name, value) pairs.
Subject = tuple[tuple[tuple[str, str], ...], ...]


def subject_problem(subject: Subject, identity: str, organization: str | None) -> str | None:
    """Why a verified client certificate may not be used by ``identity``, or None when it may.

    CN must equal the identity exactly and O the CPO's name exactly (A00.FR.404/.405): a substring check would
    let the certificate of station "12" pass for "123", and a missing CN check lets any station's certificate
    claim any identity (both seen in other central systems).
    """
    names: dict[str, list[str]] = {}
    for rdn in subject:
        for name, value in rdn:
            names.setdefault(name, []).append(value)
    common_names = names.get("commonName", [])
    if common_names != [identity]:
        return f"certificate CN {common_names!r} is not the station identity {identity!r}"
    if organization is not None and names.get("organizationName", []) != [organization]:
        return f"certificate O {names.get('organizationName', [])!r} is not the CPO name {organization!r}"
    return None


# -- throttling -----------------------------------------------------------------------------------------------


_K = TypeVar("_K")
_V = TypeVar("_V")


class FailureThrottle:
    """Counts auth failures per key (an identity or an IP) in a sliding window; after ``limit`` failures the key
    is locked for ``lockout`` seconds, during which attempts are refused without checking a password.

    Memory is bounded: at most ``max_keys`` keys are tracked; the least recently failed is forgotten first.
    ``now`` is any monotonic time in seconds.
    """

    def __init__(self, limit: int, window: float, lockout: float, max_keys: int) -> None:
        self._limit = limit
        self._window = window
        self._lockout = lockout
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked_until: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures) + len(self._locked_until)

    def locked_for(self, key: str, now: float) -> float:
        """Seconds ``key`` stays locked (0 when it is not)."""
        until = self._locked_until.get(key)
        if until is None:
            return 0.0
        if until <= now:
            del self._locked_until[key]
            return 0.0
        return until - now

    def fail(self, key: str, now: float) -> bool:
        """Count a failure; True when this one locks the key."""
        times = self._failures.pop(key, None) or deque()
        while times and times[0] <= now - self._window:
            times.popleft()
        times.append(now)
        if len(times) >= self._limit:
            self._locked_until[key] = now + self._lockout
            self._locked_until.move_to_end(key)
            _trim(self._locked_until, self._max_keys)
            return True
        self._failures[key] = times
        _trim(self._failures, self._max_keys)
        return False

    def succeed(self, key: str) -> None:
        self._failures.pop(key, None)


class VerifiedLogins:
    """Passwords this process has already verified against a stored argon2 hash, so a station that logs in again
    (a reconnect, a retry after its client gave up while we were hashing) costs one HMAC instead of one argon2id.

    After a restart every station costs one argon2id verification, then none while its hash stays the same: a
    reconnect storm costs one slow hash per station, not one per attempt. Only keyed digests are kept, under a
    random key that lives in this process alone (never stored, never logged), so what is in memory cannot be
    attacked offline like a stolen hash could. A digest binds the password to the stored hash, whose salt is unique:
    a changed or rotated password has a new hash, so an old password's entry can never match again (it is evicted
    in turn). At most ``max_entries`` are kept, the least recently used forgotten first; 0 keeps none.
    """

    def __init__(self, max_entries: int, key: bytes) -> None:
        self._max_entries = max_entries
        self._key = key
        self._digests: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._digests)

    def digest(self, stored_hash: str, secret: bytes) -> bytes:
        return hmac.digest(self._key, stored_hash.encode() + b"\0" + secret, hashlib.sha256)

    def known(self, digest: bytes) -> bool:
        if digest not in self._digests:
            return False
        self._digests.move_to_end(digest)
        return True

    def remember(self, digest: bytes) -> None:
        if self._max_entries == 0:
            return
        self._digests[digest] = None
        self._digests.move_to_end(digest)
        _trim(self._digests, self._max_entries)


def _trim(entries: OrderedDict[_K, _V], max_keys: int) -> None:
    while len(entries) > max_keys:
        entries.popitem(last=False)
