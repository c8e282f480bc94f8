"""Version-neutral value types shared by the station core and the protocol adapters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "Behaviour",
    "ConnectorSnapshot",
    "ConnectorState",
    "MeterSample",
    "Protocol",
    "Reservation",
    "Settings",
    "StationSnapshot",
    "StopReason",
    "TxTrigger",
]


class Protocol(StrEnum):
    """WebSocket subprotocol names, used as-is in the handshake."""

    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"


class ConnectorState(StrEnum):
    """Connector state in OCPP 1.6 terms; 2.0.1 folds the in-use states into `Occupied`."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"

    @property
    def v201(self) -> str:
        if self in (ConnectorState.AVAILABLE, ConnectorState.RESERVED):
            return self.value
        if self in (ConnectorState.UNAVAILABLE, ConnectorState.FAULTED):
            return self.value
        return "Occupied"


class StopReason(StrEnum):
    """Why a transaction ended (neutral; each adapter maps it to its own enum)."""

    LOCAL = "Local"
    REMOTE = "Remote"
    EV_DISCONNECTED = "EVDisconnected"
    DEAUTHORIZED = "DeAuthorized"
    HARD_RESET = "HardReset"
    SOFT_RESET = "SoftReset"
    UNLOCK = "UnlockCommand"
    POWER_LOSS = "PowerLoss"
    EMERGENCY_STOP = "EmergencyStop"
    OTHER = "Other"


class TxTrigger(StrEnum):
    """What caused a transaction event (2.0.1 `triggerReason` values)."""

    AUTHORIZED = "Authorized"
    CABLE_PLUGGED_IN = "CablePluggedIn"
    REMOTE_START = "RemoteStart"
    METER_PERIODIC = "MeterValuePeriodic"
    CHARGING_STATE = "ChargingStateChanged"
    STOP_AUTHORIZED = "StopAuthorized"
    REMOTE_STOP = "RemoteStop"
    EV_DEPARTED = "EVDeparted"
    DEAUTHORIZED = "Deauthorized"
    TRIGGER = "Trigger"
    RESET = "ResetCommand"
    UNLOCK = "UnlockCommand"
    ABNORMAL = "AbnormalCondition"
    EV_CONNECT_TIMEOUT = "EVConnectTimeout"


@dataclass(frozen=True)
class Behaviour:
    """Non-idealities of a station, for testing how robust smart charging is.

    ignore_profiles: the station draws its hardware maximum whatever profiles say.
    profile_delay_s: a new profile only takes effect this many simulated seconds after it arrived.
    draw_factor: the EV draws this share of what it could (1.0 = ideal).
    """

    ignore_profiles: bool = False
    profile_delay_s: float = 0.0
    draw_factor: float = 1.0
    send_charging_needs: bool = False


@dataclass(frozen=True)
class Settings:
    """Neutral view of the protocol-specific configuration (1.6 keys / 2.0.1 device model)."""

    heartbeat_interval_s: int
    meter_interval_s: int
    connection_timeout_s: int
    authorize_remote_start: bool
    local_authorize_offline: bool
    allow_offline_unknown: bool
    auth_cache_enabled: bool
    local_list_enabled: bool
    tx_message_attempts: int
    tx_message_retry_s: int
    max_stack_level: int
    max_schedule_periods: int
    max_profiles: int
    basic_auth_password: str | None


@dataclass(frozen=True)
class MeterSample:
    """One meter reading of a connector; `current_a` is per phase on each of `phases` phases."""

    timestamp: datetime
    energy_wh: float
    power_w: float
    current_a: float
    phases: int
    voltage: float
    offered_a: float
    soc_percent: float | None
    context: str = "Sample.Periodic"


@dataclass(frozen=True)
class Reservation:
    reservation_id: int
    id_tag: str
    expiry: datetime
    parent_id_tag: str | None = None


@dataclass(frozen=True)
class ConnectorSnapshot:
    """Read-only view of a connector for tests and the dashboard."""

    connector_id: int
    state: ConnectorState
    plugged: bool
    transaction_id: str | None
    id_tag: str | None
    current_a: float
    phases: int
    power_w: float
    offered_a: float
    energy_wh: float
    session_energy_wh: float
    soc_percent: float | None
    reservation_id: int | None


@dataclass(frozen=True)
class StationSnapshot:
    identity: str
    protocol: Protocol
    connected: bool
    booted: bool
    connectors: tuple[ConnectorSnapshot, ...]
    queued_messages: int
    sessions_started: int
    sessions_completed: int
    energy_wh: float

    @property
    def power_w(self) -> float:
        return sum(c.power_w for c in self.connectors)

    @property
    def active_sessions(self) -> int:
        return sum(1 for c in self.connectors if c.transaction_id is not None)
