"""Who may open a charger connection, and the credentials behind it (security profiles 0-3, issue 6).

:meth:`StationSecurityService.admit` decides every websocket upgrade before it happens; the runtime only turns
its :class:`Refusal` into an HTTP response. Password hashes are argon2id, computed and verified on a small
thread pool of their own so a flood of bad logins cannot stall the event loop (or fill the default executor).
Every refusal and every credential change is stored as a security event.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.config import SecuritySettings
from csms.domain.commands import SetConfiguration, SetVariables, VariableRef
from csms.domain.security import (
    PASSWORD_ALPHABET,
    CredentialError,
    FailureThrottle,
    Listener,
    PasswordEncoding,
    PendingRotation,
    Requirement,
    SecurityEvent,
    SecurityEventKind,
    SecurityProfile,
    StationCredentials,
    Subject,
    VerifiedLogins,
    check_password,
    parse_basic_auth,
    requirement,
    secret_candidates,
    subject_problem,
)
from csms.domain.stations import StationId, is_identifier_string
from csms.errors import Conflict, InvalidRequest, StationError, StationOffline, StationTimeout, StorageError
from csms.service.commands import CommandService
from csms.storage import security as store
from csms.storage.sql import SqlStorage

__all__ = ["Admission", "ConnectAttempt", "PasswordChange", "Refusal", "StationSecurityService"]

log = structlog.get_logger(__name__)

# Generated passwords: 2.0.1 gets the traditional maxLimit, 1.6 a random 20-byte key as 40 hex digits (the
# white paper's advice), an unknown version 20 characters valid in both.
_GENERATED_LENGTH = {"2.0.1": 40, None: 20}
_FLAPPING_REPLACEMENTS = 3
_LEGACY_TLS_VERSIONS = frozenset({"TLSv1", "TLSv1.1"})
_REBOOT_REQUIRED = "RebootRequired"
_NEW_PASSWORD = "new password"  # _check_password: the login used the pending (rotated-to) password


@dataclass(slots=True)
class _Verification:
    """One argon2 verification on the pool, shared by every login waiting for the same password and hashes."""

    job: concurrent.futures.Future[int | None]  # index of the (hash, secret) pair that matched, or None
    pairs: tuple[tuple[str, bytes], ...]
    waiting: int = 0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an upgrade was refused: the HTTP status and a message for the station (never a secret)."""

    status: int
    message: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    profile: SecurityProfile


@dataclass(frozen=True, slots=True)
class PasswordChange:
    credentials: StationCredentials
    password: str | None  # only when the server generated it: shown once, never stored
    status: str | None = None  # the station's answer to a rotation


@dataclass(frozen=True, slots=True)
class ConnectAttempt:
    """What the runtime knows about an upgrade request."""

    identity: str
    listener: Listener
    remote_ip: str | None
    authorization: str | None  # the Authorization header, if any
    certificate: Subject | None  # the verified client certificate's subject (TLS port), if one was sent
    ocpp_version: str | None = None  # the version the offered subprotocols select ("1.6", "2.0.1"), if any
    certificate_not_after: datetime | None = None  # the end of the client certificate's validity period
    tls_version: str | None = None  # the negotiated TLS version ("TLSv1.2", ...) on the TLS port


class StationSecurityService:
    def __init__(
        self,
        settings: SecuritySettings,
        storage: SqlStorage,
        engine: AsyncEngine,
        commands: CommandService,
        is_known: Callable[[str], bool],
        auto_register: bool,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        token: Callable[[str, int], str] | None = None,
        on_password_check: Callable[[str], None] = lambda how: None,
    ) -> None:
        self._settings = settings
        self._storage = storage
        self._engine = engine
        self._commands = commands
        self._is_known = is_known
        self._auto_register = auto_register
        self._clock = clock
        self._monotonic = monotonic
        self._token = token or _random_token
        self._hasher = PasswordHasher(
            time_cost=settings.hash_time_cost, memory_cost=settings.hash_memory_kib, parallelism=1
        )
        self._pool = ThreadPoolExecutor(max_workers=settings.hash_threads, thread_name_prefix="argon2")
        self._verified = VerifiedLogins(settings.verified_logins_kept, secrets.token_bytes(32))
        self._verifying: dict[bytes, _Verification] = {}
        self._on_password_check = on_password_check  # "argon2", "remembered" or "joined" (metrics)
        window, lockout, keys = settings.failure_window_seconds, settings.lockout_seconds, settings.throttle_max_keys
        self._by_identity = FailureThrottle(settings.failures_per_identity, window, lockout, keys)
        self._by_ip = FailureThrottle(settings.failures_per_ip, window, lockout, keys)
        # More than 3 replacements of one identity in 60 s: two devices share an identity, or a station is stuck
        # in a reconnect loop (reported once a minute per identity).
        self._replacements = FailureThrottle(_FLAPPING_REPLACEMENTS + 1, 60.0, 60.0, keys)
        self._credentials: dict[str, StationCredentials] = {}
        self._legacy_tls_stations = frozenset(settings.tls_legacy_v16_stations)
        self._rotating: set[str] = set()

    async def load(self) -> None:
        try:
            async with self._engine.connect() as conn:
                rows = await store.read_credentials(conn)
        except SQLAlchemyError as exc:
            raise StorageError(f"read failed: {exc}") from exc
        self._credentials = {c.station_id: c for c in rows}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def throttled_keys(self) -> int:
        """Identities and IPs the throttle currently tracks (bounded by ``throttle_max_keys`` each)."""
        return len(self._by_identity) + len(self._by_ip)

    def credentials(self, station_id: str) -> StationCredentials | None:
        return self._credentials.get(station_id)

    def profile(self, station_id: str) -> SecurityProfile:
        record = self._credentials.get(station_id)
        return record.profile if record else SecurityProfile.UNSECURED

    # -- admission ------------------------------------------------------------------------------------------

    async def admit(self, attempt: ConnectAttempt) -> Admission | Refusal:
        """Whether this upgrade request may become a station connection; refusals are recorded as events."""
        identity, ip = attempt.identity, attempt.remote_ip
        if self._needs_identifier_string(attempt.ocpp_version) and not is_identifier_string(identity):
            detail = f"identity is no identifierString, required for OCPP {attempt.ocpp_version}"
            await self._fail(attempt, SecurityEventKind.IDENTITY_REFUSED, detail, count=False)
            return Refusal(
                400, "identity must be 1-48 characters of A-Z a-z 0-9 * - _ = + | @ . (OCPP identifierString)"
            )
        if attempt.tls_version in _LEGACY_TLS_VERSIONS and not (
            attempt.ocpp_version == "1.6" and identity in self._legacy_tls_stations
        ):
            detail = f"{attempt.tls_version} from a station not listed in security.tls_legacy_v16_stations"
            if attempt.ocpp_version != "1.6":
                detail = f"{attempt.tls_version} with OCPP {attempt.ocpp_version}: only 1.6 legacy stations may"
            await self._fail(attempt, SecurityEventKind.LEGACY_TLS_REFUSED, detail, count=False)
            return Refusal(403, "TLS 1.2 or newer required")
        now = self._monotonic()
        locked = max(self._by_identity.locked_for(identity, now), self._by_ip.locked_for(ip or "", now))
        if locked > 0:
            # No password check while locked: a guesser learns nothing and costs us nothing.
            return Refusal(429, "too many failed attempts: try again later", retry_after=locked)
        record = self._credentials.get(identity)
        unknown = record is None and not self._auto_register and not self._is_known(identity)
        if unknown and self._settings.refuse_unknown_identities:
            await self._fail(attempt, SecurityEventKind.UNKNOWN_STATION, "identity not registered", count=False)
            return Refusal(404, "unknown charging station")
        profile = record.profile if record else SecurityProfile.UNSECURED
        match requirement(profile, attempt.listener):
            case Requirement.WRONG_LISTENER:
                detail = f"station has security profile {int(profile)}, connected on the {attempt.listener} port"
                await self._fail(attempt, SecurityEventKind.PROFILE_MISMATCH, detail, count=False)
                return Refusal(403, "security profile mismatch: this port does not serve the station's profile")
            case Requirement.NOTHING:
                if not self._settings.allow_unsecured:
                    detail = "no credentials recorded and security.allow_unsecured is off"
                    await self._fail(attempt, SecurityEventKind.UNSECURED_REFUSED, detail, count=False)
                    return Refusal(401, "credentials required")
            case Requirement.PASSWORD:
                assert record is not None
                refusal = await self._check_password(attempt, record)
                if isinstance(refusal, Refusal):
                    return refusal
                if record.pending_hash is not None and identity not in self._rotating:
                    await self._settle_by_login(record, used_new=refusal == _NEW_PASSWORD)
            case Requirement.CERTIFICATE:
                if attempt.certificate is None:
                    await self._fail(attempt, SecurityEventKind.CERTIFICATE_MISSING, "no client certificate")
                    return Refusal(403, "security profile 3 requires a client certificate")
                problem = subject_problem(attempt.certificate, identity, self._settings.cpo_name)
                if problem is not None:
                    await self._fail(attempt, SecurityEventKind.CERTIFICATE_REJECTED, problem)
                    return Refusal(403, "client certificate does not belong to this station")
                expired = attempt.certificate_not_after
                if expired is not None and expired < self._clock():
                    # Only security.tls_accept_expired_client_certificates lets OpenSSL pass it: say so each time.
                    detail = f"client certificate expired {expired.isoformat()}: accepted (A00.FR.430)"
                    await self.record(SecurityEventKind.CERTIFICATE_EXPIRED_ACCEPTED, identity, ip, detail)
        self._by_identity.succeed(identity)
        return Admission(profile)

    def _needs_identifier_string(self, version: str | None) -> bool:
        return version == "2.0.1" or (version == "1.6" and self._settings.v16_identifier_string)

    async def _settle_by_login(self, record: StationCredentials, used_new: bool) -> None:
        """A login settles a rotation the station's answer left open (see :class:`PendingRotation`).

        With the new password: from now on only that one works (A01.FR.03, applied once the station uses it).
        With the old one after an unanswered rotation: the station did not take the new password, which is
        dropped (A01.FR.04). The old one after RebootRequired settles nothing: the station has not rebooted yet.
        """
        reason = record.pending_reason or PendingRotation.REBOOT_REQUIRED
        now = self._clock()
        if used_new:
            settled = replace(record, password_hash=record.pending_hash, password_set_at=now)
            kind = SecurityEventKind.PASSWORD_ROTATED
            detail = f"station logged in with the password of its {reason} rotation: the old one is retired"
        elif reason is PendingRotation.UNANSWERED:
            settled = record
            kind = SecurityEventKind.PASSWORD_ROTATION_FAILED
            detail = "station logged in with the old password after an unanswered rotation: the new one is dropped"
        else:
            return
        await self._save(replace(settled, pending_hash=None, pending_reason=None, updated_at=now), now)
        await self.record(kind, record.station_id, None, detail)

    async def _check_password(self, attempt: ConnectAttempt, record: StationCredentials) -> Refusal | str | None:
        """A Refusal, or None when the current password matched, or _NEW_PASSWORD when the pending one did."""
        try:
            given = parse_basic_auth(attempt.authorization)
        except CredentialError as exc:
            await self._fail(attempt, SecurityEventKind.AUTH_MISSING, str(exc))
            return Refusal(401, "Basic credentials required")
        if given.username != attempt.identity:
            # A00.FR.204/.303: the user name must be the identity in the URL (exactly, not case-folded).
            detail = f"Basic-auth user {given.username[:60]!r} is not the identity"
            await self._fail(attempt, SecurityEventKind.USERNAME_MISMATCH, detail)
            return Refusal(401, "invalid credentials")
        current = (record.password_hash,) if record.password_hash is not None else ()
        if await self._matches(current, given.password):
            return None
        if record.pending_hash is not None and await self._matches((record.pending_hash,), given.password):
            return _NEW_PASSWORD
        detail = "wrong password" if record.hashes() else "station has no password set"
        await self._fail(attempt, SecurityEventKind.AUTH_FAILED, detail)
        return Refusal(401, "invalid credentials")

    async def _matches(self, hashes: tuple[str, ...], password: bytes) -> bool:
        """Whether ``password`` matches one of ``hashes``: from memory when this process verified it before, else
        by argon2id on the pool, the same job shared by every concurrent login with the same password."""
        if not hashes:
            return False
        pairs = tuple((stored, secret) for stored in hashes for secret in secret_candidates(password))
        digests = [self._verified.digest(stored, secret) for stored, secret in pairs]
        if any(self._verified.known(digest) for digest in digests):
            self._on_password_check("remembered")
            return True
        key = b"".join(digests)
        verification = self._verifying.get(key)
        if verification is not None:
            self._on_password_check("joined")
        else:
            verification = _Verification(self._pool.submit(self._first_match, pairs), pairs)
            self._verifying[key] = verification
            loop = asyncio.get_running_loop()
            verification.job.add_done_callback(lambda _: _call_soon(loop, self._verified_one, key, verification))
        verification.waiting += 1
        try:
            # Shielded: one login giving up (its client left, the handshake timed out) must not cancel the
            # verification the others wait for; the last one to leave cancels it if it has not started.
            return await asyncio.shield(asyncio.wrap_future(verification.job)) is not None
        finally:
            verification.waiting -= 1
            if verification.waiting == 0:
                verification.job.cancel()

    def _verified_one(self, key: bytes, verification: _Verification) -> None:
        """On the loop, when a verification ended: remember a match even if every login waiting for it left, so
        the station's next attempt (a retry after its client gave up on a long queue) is admitted at once."""
        if self._verifying.get(key) is verification:
            del self._verifying[key]
        job = verification.job
        if job.cancelled() or job.exception() is not None:
            return
        matched = job.result()
        if matched is not None:
            stored, secret = verification.pairs[matched]
            self._verified.remember(self._verified.digest(stored, secret))

    def _first_match(self, pairs: tuple[tuple[str, bytes], ...]) -> int | None:
        for index, (stored, secret) in enumerate(pairs):
            self._on_password_check("argon2")
            try:
                if self._hasher.verify(stored, secret):
                    return index
            except (VerificationError, InvalidHashError):
                continue
        return None

    async def _fail(self, attempt: ConnectAttempt, kind: SecurityEventKind, detail: str, count: bool = True) -> None:
        """Record a refusal; ``count`` it towards the throttle when it could be a guess."""
        if count:
            now = self._monotonic()
            locked = self._by_identity.fail(attempt.identity, now)
            locked_ip = attempt.remote_ip is not None and self._by_ip.fail(attempt.remote_ip, now)
            if locked or locked_ip:
                which = "identity" if locked else f"IP {attempt.remote_ip}"
                await self.record(
                    SecurityEventKind.THROTTLED,
                    attempt.identity,
                    attempt.remote_ip,
                    f"{which} locked for {self._settings.lockout_seconds:g} s after repeated failures",
                )
        await self.record(kind, attempt.identity, attempt.remote_ip, f"{attempt.listener} port: {detail}")

    async def replaced(self, station_id: str, ip: str | None, old_session: int) -> None:
        """An admitted connection is about to replace the station's live one: audit it, and flag flapping."""
        detail = f"an admitted connection replaced session {old_session}"
        await self.record(SecurityEventKind.CONNECTION_REPLACED, station_id, ip, detail)
        now = self._monotonic()
        if not self._replacements.locked_for(station_id, now) and self._replacements.fail(station_id, now):
            detail = f"more than {_FLAPPING_REPLACEMENTS} replacements within 60 s"
            await self.record(SecurityEventKind.CONNECTION_FLAPPING, station_id, ip, detail)

    async def record(self, kind: SecurityEventKind, station_id: str | None, ip: str | None, detail: str) -> None:
        """Store a security event and log it (never with a secret in it).

        A database that cannot take the event does not turn a refusal into a 500 (or an admitted duplicate into
        a failed one): the log line keeps the event and says it was not stored.
        """
        event = SecurityEvent(self._clock(), kind, station_id, ip, detail)
        log.warning("security event", kind=kind.value, station_id=station_id, remote_ip=ip, detail=detail)
        try:
            await self._storage.write([store.insert_event(event)])
        except StorageError as exc:
            log.warning("security event not stored", kind=kind.value, station_id=station_id, error=str(exc))

    # -- credentials ----------------------------------------------------------------------------------------

    async def set_credentials(
        self,
        station_id: StationId,
        profile: SecurityProfile,
        password: str | None,
        generate: bool,
        version: str | None,
        encoding: PasswordEncoding = PasswordEncoding.TEXT,
        max_length: int | None = None,
        allow_downgrade: bool = False,
    ) -> PasswordChange:
        """Record the station's profile and (new) password. The station is not told: use this to provision a
        station before it connects, or after configuring it by hand; :meth:`rotate_password` changes it over OCPP.

        Raises:
            InvalidRequest: the password breaks the version's rules, or profile 1/2 without any password.
            Conflict: a lower profile than recorded without ``allow_downgrade``.
        """
        old = self._credentials.get(station_id)
        if old is not None and profile < old.profile and not allow_downgrade:
            raise Conflict(
                f"station {station_id} has security profile {int(old.profile)}; lowering it to {int(profile)} "
                "needs allow_downgrade (admins only)"
            )
        secret, shown = await self._new_secret(station_id, password, generate, version, encoding, max_length)
        now = self._clock()
        record = old or StationCredentials(station_id, profile)
        record = replace(record, profile=profile, updated_at=now)
        if secret is not None:
            record = replace(
                record,
                password_hash=await self._hash(secret),
                pending_hash=None,
                pending_reason=None,
                password_set_at=now,
            )
        if profile in (SecurityProfile.BASIC, SecurityProfile.TLS_BASIC) and record.password_hash is None:
            raise InvalidRequest(f"security profile {int(profile)} needs a password: give one or generate one")
        events = []
        if old is None or old.profile != profile:
            before = int(old.profile) if old else 0
            events.append((SecurityEventKind.PROFILE_CHANGED, f"security profile {before} -> {int(profile)}"))
        if secret is not None:
            events.append((SecurityEventKind.PASSWORD_SET, "password set" + (" (generated)" if shown else "")))
        await self._save(record, now)
        for kind, detail in events:
            await self.record(kind, station_id, None, detail)
        return PasswordChange(record, shown)

    async def rotate_password(
        self,
        station_id: StationId,
        password: str | None,
        generate: bool,
        encoding: PasswordEncoding = PasswordEncoding.TEXT,
        max_length: int | None = None,
    ) -> PasswordChange:
        """Send a new password to the connected station (1.6 ChangeConfiguration AuthorizationKey, 2.0.1
        SetVariables SecurityCtrlr.BasicAuthPassword). Both passwords work while the station decides; after
        Accepted only the new one, otherwise only the old one (A01.FR.03/.04).

        Raises:
            StationOffline: the station is not connected. Conflict: not a password profile, or a rotation of
            this station is already under way. InvalidRequest: the password breaks the version's rules.
        """
        version = self._commands.version(station_id)
        if version is None:
            raise StationOffline(station_id)
        record = self._credentials.get(station_id)
        if record is None or record.profile not in (SecurityProfile.BASIC, SecurityProfile.TLS_BASIC):
            profile = int(record.profile) if record else 0
            raise Conflict(f"station {station_id} has security profile {profile}: passwords are for profiles 1 and 2")
        if station_id in self._rotating:
            raise Conflict(f"a password change for station {station_id} is already under way")
        if record.pending_hash is not None:
            # The station answered RebootRequired to the last rotation (or did not answer it) and has not logged
            # in since to settle it: a new password would replace the only hash of the one it may log in with
            # next, and lock it out.
            raise Conflict(
                f"station {station_id} has yet to log in after its last rotation ({record.pending_reason}): "
                "reset the station first, or set its credentials with PUT /stations/{id}/security"
            )
        self._rotating.add(station_id)
        try:
            return await self._rotate(station_id, record, version, password, generate, encoding, max_length)
        finally:
            self._rotating.discard(station_id)

    async def _rotate(
        self,
        station_id: StationId,
        record: StationCredentials,
        version: str,
        password: str | None,
        generate: bool,
        encoding: PasswordEncoding,
        max_length: int | None,
    ) -> PasswordChange:
        secret, shown = await self._new_secret(station_id, password, generate, version, encoding, max_length)
        if secret is None:
            raise InvalidRequest("give the new password or ask for a generated one")
        wire = shown if shown is not None else password
        assert wire is not None
        # Stored as unanswered until the answer comes: should the server stop meanwhile, the station's next login
        # settles the rotation.
        pending_hash = await self._hash(secret)
        pending = replace(
            record, pending_hash=pending_hash, pending_reason=PendingRotation.UNANSWERED, updated_at=self._clock()
        )
        await self._save(pending, self._clock())
        command: SetConfiguration | SetVariables
        if version == "1.6":
            command = SetConfiguration("AuthorizationKey", wire)
        else:
            command = SetVariables((VariableRef("SecurityCtrlr", "BasicAuthPassword", value=wire),))
        try:
            result = await self._commands.execute(station_id, command, self._clock())
        except (StationTimeout, StationOffline) as exc:
            # No answer: the station may have stored the new password (and its answer got lost), so dropping it
            # could lock the station out at its next login. Both stay valid until that login settles it.
            detail = f"no answer ({exc}): both passwords accepted until the station's next login settles it"
            await self.record(SecurityEventKind.PASSWORD_ROTATION_FAILED, station_id, None, detail)
            raise
        except StationError as exc:
            await self._settle(record, accepted=False, detail=f"no usable answer: {exc}")
            raise
        status = result.status if version == "1.6" else _set_variable_status(result.response)
        if status == _REBOOT_REQUIRED:
            # OCPP 1.6 §5.3 (ChangeConfiguration) and 2.0.1 SetVariableStatusEnum: the change was made but takes
            # effect after a reboot. The station has stored the new password and keeps using the old one until
            # then: both stay valid, and its first login with the new one retires the old (see admit()).
            pending = replace(pending, pending_reason=PendingRotation.REBOOT_REQUIRED)
            await self._save(pending, self._clock())
            detail = "station answered RebootRequired: both passwords accepted until it logs in with the new one"
            await self.record(SecurityEventKind.PASSWORD_ROTATED, station_id, None, detail)
            return PasswordChange(pending, shown, status)
        accepted = status == "Accepted"
        final = await self._settle(pending if accepted else record, accepted, f"station answered {status}")
        return PasswordChange(final, shown, status)

    async def _settle(self, record: StationCredentials, accepted: bool, detail: str) -> StationCredentials:
        now = self._clock()
        if accepted:
            record = replace(
                record, password_hash=record.pending_hash, pending_hash=None, pending_reason=None, password_set_at=now
            )
            kind = SecurityEventKind.PASSWORD_ROTATED
        else:
            record = replace(record, pending_hash=None, pending_reason=None)
            kind = SecurityEventKind.PASSWORD_ROTATION_FAILED
        await self._save(replace(record, updated_at=now), now)
        await self.record(kind, record.station_id, None, detail)
        return record

    async def _new_secret(
        self,
        station_id: str,
        password: str | None,
        generate: bool,
        version: str | None,
        encoding: PasswordEncoding,
        max_length: int | None,
    ) -> tuple[bytes | None, str | None]:
        """The secret bytes to hash (None: no new password) and the generated password to show (if any)."""
        if password is not None and generate:
            raise InvalidRequest("give a password or ask for a generated one, not both")
        if version is None:
            station = await self._storage.get_station(station_id)
            version = station.protocol.removeprefix("ocpp") if station and station.protocol else None
        if generate:
            if version == "1.6":
                password, encoding = self._token("0123456789abcdef", 40), PasswordEncoding.HEX
            else:
                password = self._token(PASSWORD_ALPHABET, _GENERATED_LENGTH.get(version, 20))
        if password is None:
            return None, None
        try:
            secret = check_password(password, version, encoding, max_length)
        except CredentialError as exc:
            raise InvalidRequest(str(exc)) from None
        return secret, password if generate else None

    async def _hash(self, secret: bytes) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._hasher.hash, secret)

    async def _save(self, record: StationCredentials, now: datetime) -> None:
        await self._storage.write(store.put_credentials(record, now))
        self._credentials[record.station_id] = record

    # -- events ---------------------------------------------------------------------------------------------

    async def events(
        self,
        station_ids: list[str] | None,
        kind: SecurityEventKind | None,
        limit: int,
        before_id: int | None = None,
    ) -> list[tuple[int, SecurityEvent]]:
        try:
            async with self._engine.connect() as conn:
                return await store.read_events(conn, station_ids, kind, limit, before_id)
        except SQLAlchemyError as exc:
            raise StorageError(f"read failed: {exc}") from exc


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: object) -> None:
    """``callback`` on ``loop`` from the pool's thread; nothing once the loop has closed (the server stopped)."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass


def _random_token(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _set_variable_status(response: dict[str, object]) -> str | None:
    results = response.get("setVariableResult")
    if isinstance(results, list) and results and isinstance(results[0], dict):
        status = results[0].get("attributeStatus")
        return status if isinstance(status, str) else None
    return None
