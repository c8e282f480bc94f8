"""Settings: defaults < a TOML file (``config/csms.toml``) < ``CSMS_*`` environment variables.

Nested keys use ``__`` in the environment: ``CSMS_OCPP__PORT=9001`` overrides ``[ocpp] port``. An invalid value
or an unknown key fails at start with :class:`~csms.errors.ConfigError` naming the key, e.g. ``ocpp.port``.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from csms.errors import ConfigError

__all__ = [
    "DATABASE_SCHEMES",
    "ApiSettings",
    "BookingSettings",
    "DatabaseSettings",
    "LiveSettings",
    "LogSettings",
    "OcppSettings",
    "SecuritySettings",
    "Settings",
    "SmartChargingSettings",
    "StationSettings",
    "TariffSettings",
    "UnknownStationStatus",
    "load_settings",
]


class _Section(BaseModel):
    # A typo in a config file must fail loudly rather than be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class OcppSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(default=9000, ge=0, le=65535)
    path: str = Field(default="/ocpp", pattern=r"^/[A-Za-z0-9_\-/]*$")
    heartbeat_interval: int = Field(default=300, ge=1, le=86400)
    call_timeout: float = Field(default=30.0, gt=0, le=600)
    max_frame_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    # A half-open connection (the peer vanished without a FIN) is freed at the latest ping_interval + ping_timeout
    # + close_timeout after its last pong: 50 + 25 + 10 = 85 s by default, within the 90 s of issue 6 test #12.
    ping_interval: float | None = Field(default=50.0, gt=0)
    ping_timeout: float | None = Field(default=25.0, gt=0)
    # Hostile or broken peers (docs/security.md "Hostile input"): a handshake must finish within open_timeout
    # (slowloris), a closing peer gets close_timeout to answer our close frame, and a write that the peer does
    # not take within send_timeout (it stopped reading) cuts the connection. write_limit bounds what we buffer
    # for one connection and max_queue how many received frames wait unread (then TCP pushes back).
    open_timeout: float = Field(default=10.0, gt=0, le=300)
    close_timeout: float = Field(default=10.0, gt=0, le=300)
    send_timeout: float = Field(default=10.0, gt=0, le=600)
    write_limit: int = Field(default=32_768, ge=1024, le=16 * 1_048_576)
    max_queue: int = Field(default=16, ge=1, le=1024)
    # permessage-deflate memory: 2.0.1 requires the CSMS to support it, but zlib's defaults cost ~38 kB per
    # connection; a small window and memLevel keep idle chargers cheap while still compressing JSON well.
    deflate_window_bits: int = Field(default=10, ge=9, le=15)
    deflate_mem_level: int = Field(default=2, ge=1, le=9)
    deflate_context_takeover: bool = False


class ApiSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    # Every /api/v1 request carries ``Authorization: Bearer <API key>`` (keys: accounts with roles, docs/api.md).
    # admin_token is an optional static admin credential (e.g. from a secret store); without it, the first start
    # writes an admin API key to bootstrap_key_file (mode 0600) so the operator can create accounts and keys.
    admin_token: SecretStr | None = Field(default=None, min_length=16)
    bootstrap_key_file: Path = Path("data/admin-api-key")


# The database URL schemes (SQLAlchemy dialect+driver) the storage layer is written and tested for.
DATABASE_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")


class DatabaseSettings(_Section):
    # sqlite+aiosqlite:///path/to/file.db (embedded default) or postgresql+asyncpg://user:password@host:port/name.
    url: str = "sqlite+aiosqlite:///data/csms.db"
    # Messages committed per transaction at most; the writer batches whatever is waiting (group commit).
    max_batch: int = Field(default=512, ge=1, le=100_000)
    # SQLite: "normal" survives a crash or kill of the process (commits are in the OS before a reply);
    # "full" also survives a power cut, at one fsync per batch, done on a writer thread.
    # PostgreSQL ignores it: a commit is as durable as the server's synchronous_commit and fsync make it.
    synchronous: Literal["normal", "full"] = "normal"
    # Seconds between WAL checkpoints, done off the event loop so commits never wait for them (SQLite only).
    checkpoint_interval: float = Field(default=1.0, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _supported_scheme(cls, url: str) -> str:
        scheme = url.partition("://")[0]
        if scheme not in DATABASE_SCHEMES:
            raise ValueError(f"unsupported database URL scheme {scheme!r}: use one of {', '.join(DATABASE_SCHEMES)}")
        return url


class UnknownStationStatus(StrEnum):
    REJECTED = "Rejected"
    PENDING = "Pending"


class StationSettings(_Section):
    auto_register: bool = True
    unknown_station_status: UnknownStationStatus = UnknownStationStatus.REJECTED
    # Free-vend / demo sites: unknown id tokens are accepted. Off by default; the embedded config turns it on.
    allow_unknown_tokens: bool = False


class SmartChargingSettings(_Section):
    """Grid-limit smart charging: how often to re-plan and how to talk to chargers about it."""

    enabled: bool = True  # only stations wired to a grid node are managed
    algorithm: str = Field(default="realtime", pattern=r"^(realtime|optimal)$")
    slot_seconds: float = Field(default=300.0, ge=1, le=3600)  # planning step (simulated seconds)
    horizon_hours: float = Field(default=24.0, gt=0, le=168)
    tick_seconds: float = Field(default=300.0, gt=0, le=3600)  # periodic re-plan, real seconds
    debounce_seconds: float = Field(default=1.0, ge=0, le=60)  # gather events before re-planning
    threshold_a: float = Field(default=1.0, ge=0, le=32)  # smaller increases are not sent
    min_write_interval_seconds: float = Field(default=120.0, ge=0, le=86400)  # between increases per EVSE
    profile_validity_seconds: float = Field(default=900.0, ge=60, le=86400)  # a lost link decays after this
    refresh_margin_seconds: float = Field(default=300.0, ge=0, le=3600)  # re-send before a profile lapses
    retry_seconds: float = Field(default=300.0, ge=1, le=86400)  # before steering a station that refused again
    settle_seconds: float = Field(default=60.0, ge=0, le=3600)  # a charger's time to apply a new limit
    overdraw_tolerance_a: float = Field(default=2.0, ge=0, le=32)  # above its limit by more = not complying
    tx_profile_stack_level: int = Field(default=1, ge=0, le=100)
    tx_default_at_boot: bool = True  # send each wired station a TxDefaultProfile at its safe share
    # Also send each wired station a ChargePointMaxProfile (1.6) / ChargingStationMaxProfile (2.0.1) at its
    # wiring's max_current_a: a ceiling for the whole station that holds even if a plan is wrong or lost.
    station_max_at_boot: bool = False
    default_stay_hours: float = Field(default=8.0, gt=0, le=168)
    default_energy_kwh: float = Field(default=30.0, ge=0, le=1000)
    # A new session on a multi-phase station whose car has not drawn yet is admitted first (at least 6 A) for up
    # to this long, so its meter values show which phases the car uses; 0 = no probe.
    phase_probe_seconds: float = Field(default=300.0, ge=0, le=3600)


class LiveSettings(_Section):
    """The live event stream (``GET /api/v1/events``) and analytics."""

    heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)  # an SSE comment when idle: proxies keep it open
    replay_events: int = Field(default=1000, ge=0, le=100_000)  # kept for clients resuming with Last-Event-ID
    stream_queue: int = Field(default=1000, ge=10, le=100_000)  # events a slow client may lag before it is cut


class BookingSettings(_Section):
    """Slot bookings: when reservations are sent to chargers and when a booking counts as a no-show."""

    lead_time_minutes: float = Field(default=15.0, ge=0, le=24 * 60)  # ReserveNow this long before the slot
    no_show_grace_minutes: float = Field(default=15.0, gt=0, le=24 * 60)  # expiryDate = slot start + this
    tick_seconds: float = Field(default=60.0, gt=0, le=3600)  # the timer loop looks at least this often
    retry_seconds: float = Field(default=60.0, ge=1, le=3600)  # an unreachable station is asked again after this
    any_connector: bool = True  # site bookings reserve "any connector/EVSE" where the station supports it


class SecuritySettings(_Section):
    """Charger security (docs/security.md): profiles 0-3, the TLS listener, password hashing, throttling."""

    # Profile 0 (no credentials at all) is for development and CI: when off, a station without recorded
    # credentials (including a new one that auto-registration would accept) gets 401.
    allow_unsecured: bool = True
    # With stations.auto_register off, an identity that is neither registered nor provisioned gets 404 before the
    # upgrade (OCPP-J 2.0.1 part 4 §3.2). Off: it may connect and is held at boot with unknown_station_status
    # (an approval queue: an operator accepts it later).
    refuse_unknown_identities: bool = True
    # A station connecting with the ocpp2.0.1 subprotocol must name itself with an identifierString (part 4
    # §3.1.1: A-Z a-z 0-9 * - _ = + | @ . , at most 48): others get 400 before the upgrade. 1.6 has no such rule
    # and chargers in the field use other characters, so for 1.6 it is opt-in.
    v16_identifier_string: bool = False
    # The TLS listener for profiles 2 and 3 (wss://); None = no TLS listener. Same path as the plain one.
    tls_port: int | None = Field(default=None, ge=0, le=65535)
    tls_host: str | None = None  # default: ocpp.host
    tls_cert_file: Path | None = None  # server certificate chain (PEM), RSA (needed for TLS_RSA_* suites)
    tls_key_file: Path | None = None
    tls_ecdsa_cert_file: Path | None = None  # optional second chain (PEM) with an ECDSA key, for ECDHE_ECDSA_*
    tls_ecdsa_key_file: Path | None = None
    # CA bundle (PEM) that signs station certificates; required for profile 3 (mutual TLS).
    tls_client_ca_file: Path | None = None
    # Certificate revocation lists (PEM) of the station CA: a revoked station certificate fails the handshake.
    # Every CA that signs station certificates needs a current CRL here (OpenSSL refuses a leaf without one);
    # a new CRL takes effect at the next start.
    tls_client_crl_file: Path | None = None
    # 2.0.1 A00.FR.430: the CSMS MAY accept an expired station certificate (a station whose clock or renewal
    # failed keeps charging). On: OpenSSL skips every validity-period check of the station's chain (so a
    # not-yet-valid certificate passes too); the chain, the CA, the subject and CRLs are still checked, and each
    # such login is a CertificateExpiredAccepted event.
    tls_accept_expired_client_certificates: bool = False
    # 1.6 legacy stations (A00.FR.324: a station expected to be legacy SHOULD be allowed TLS 1.0/1.1 with
    # TLS_RSA_WITH_AES_128_CBC_SHA). Empty (the default): TLS 1.2+ only. Listing identities opens TLS 1.0/1.1 on the
    # TLS port at OpenSSL security level 0 for every handshake (needs the RSA chain); after the handshake a
    # connection below TLS 1.2 is refused (403) unless it is a listed station speaking OCPP 1.6.
    tls_legacy_v16_stations: list[str] = Field(default_factory=list, max_length=100_000)
    # OpenSSL cipher list for TLS 1.2: the four suites of A00.FR.317 plus ECDHE_RSA with AES-GCM.
    tls_ciphers: str = (
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-RSA-AES256-GCM-SHA384:AES128-GCM-SHA256:AES256-GCM-SHA384"
    )
    # Profile 3: the O of every station certificate must equal this (A00.FR.404); None = O not checked.
    cpo_name: str | None = None
    # argon2id cost (OWASP minimum: 19 MiB, 2 passes); verification runs on its own threads.
    hash_time_cost: int = Field(default=2, ge=1, le=10)
    hash_memory_kib: int = Field(default=19_456, ge=1024, le=1_048_576)
    hash_threads: int = Field(default=2, ge=1, le=16)
    # Logins verified once are remembered in memory as keyed digests (never stored): a station reconnecting with
    # the same password costs no argon2 again. At most this many are kept (least recently used forgotten); 0: none.
    verified_logins_kept: int = Field(default=100_000, ge=0, le=10_000_000)
    # Auth failures: after `failures_per_identity` (or `failures_per_ip`) in `failure_window_seconds`, further
    # attempts get 429 without a password check for `lockout_seconds`. At most `throttle_max_keys` tracked.
    failures_per_identity: int = Field(default=5, ge=1, le=10_000)
    failures_per_ip: int = Field(default=50, ge=1, le=1_000_000)
    failure_window_seconds: float = Field(default=60.0, gt=0, le=86_400)
    lockout_seconds: float = Field(default=60.0, gt=0, le=86_400)
    throttle_max_keys: int = Field(default=10_000, ge=10, le=10_000_000)


class TariffSettings(_Section):
    """Prices, quotes and the session-rule timers (docs/pricing.md)."""

    tick_seconds: float = Field(default=5.0, gt=0, le=3600)  # real seconds between checks of session timers
    quote_validity_minutes: float = Field(default=15.0, gt=0, le=10080)  # a quote is honoured this long
    default_power_kw: float = Field(default=11.0, gt=0, le=1000)  # energy estimate when a quote gives none
    stop_retry_seconds: float = Field(default=60.0, gt=0, le=86400)  # before asking a station to stop again


class LogSettings(_Section):
    level: str = Field(default="info", pattern=r"^(debug|info|warning|error|critical)$")
    format: str = Field(default="console", pattern=r"^(console|json)$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CSMS_", env_nested_delimiter="__", extra="forbid", frozen=True)
    toml_path: ClassVar[Path | None] = None

    ocpp: OcppSettings = OcppSettings()
    api: ApiSettings = ApiSettings()
    database: DatabaseSettings = DatabaseSettings()
    stations: StationSettings = StationSettings()
    smart_charging: SmartChargingSettings = SmartChargingSettings()
    live: LiveSettings = LiveSettings()
    bookings: BookingSettings = BookingSettings()
    security: SecuritySettings = SecuritySettings()
    tariffs: TariffSettings = TariffSettings()
    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_path))
        return tuple(sources)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from ``path`` (optional) and the environment; ``overrides`` win over both.

    Raises:
        ConfigError: naming the first offending key and why, for bad files, values or unknown keys.
    """
    if path is not None:
        _check_toml_readable(path)

    class _FromFile(Settings):
        toml_path: ClassVar[Path | None] = path

    try:
        return Settings.model_validate(_FromFile(**overrides).model_dump())
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


def _check_toml_readable(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f" (from {path} or CSMS_* environment)" if path else " (from CSMS_* environment)"
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        lines.append(f"invalid config key '{key}'{where}: {error['msg']}")
    return "; ".join(lines)
