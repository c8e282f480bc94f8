"""Mutable per-connector state (sessions, pending starts) and the events the station core emits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from simulator.ev import MIN_CHARGE_CURRENT_A, EVState
from simulator.model import ConnectorState, MeterSample, Reservation, StopReason, TxTrigger
from simulator.profiles import ChargingProfile

__all__ = [
    "Connector",
    "CoreEvent",
    "PendingStart",
    "ReservationEnded",
    "Session",
    "StatusChanged",
    "TxEnded",
    "TxStarted",
    "TxUpdated",
]


@dataclass
class Session:
    """A running transaction (mutable: the 1.6 CSMS id arrives later, seqNo advances)."""

    key: str
    connector_id: int
    id_tag: str
    started_at: datetime
    meter_start_wh: float
    next_sample_at: datetime
    reservation_id: int | None = None
    remote_start_id: int | None = None
    csms_id: int | None = None
    seq_no: int = 0
    charging_state: str = "EVConnected"

    def next_seq(self) -> int:
        seq = self.seq_no
        self.seq_no += 1
        return seq

    @property
    def profile_tx_id(self) -> str:
        """Id that TxProfiles refer to: the CSMS integer on 1.6, the station's string on 2.0.1."""
        return str(self.csms_id) if self.csms_id is not None else self.key


@dataclass(frozen=True)
class PendingStart:
    """An authorization waiting for an EV to plug in (remote start, or tag presented first)."""

    id_tag: str
    expires: datetime
    trigger: TxTrigger
    remote_start_id: int | None = None
    profile: ChargingProfile | None = None
    profile_raw: dict[str, Any] | None = None


@dataclass
class Connector:
    connector_id: int
    ev: EVState | None = None
    departure: datetime | None = None
    session: Session | None = None
    pending: PendingStart | None = None
    reservation: Reservation | None = None
    operative: bool = True
    inoperative_pending: bool = False
    faulted: bool = False
    finishing: bool = False
    current_a: float = 0.0
    phases: int = 3
    offered_a: float = 0.0
    energy_wh: float = 0.0
    reported: ConnectorState | None = None

    def state(self) -> ConnectorState:
        if self.faulted:
            return ConnectorState.FAULTED
        if self.session is not None:
            if self.current_a > 0:
                return ConnectorState.CHARGING
            if self.offered_a < MIN_CHARGE_CURRENT_A:
                return ConnectorState.SUSPENDED_EVSE
            return ConnectorState.SUSPENDED_EV
        if not self.operative:
            return ConnectorState.UNAVAILABLE
        if self.ev is not None:
            return ConnectorState.FINISHING if self.finishing else ConnectorState.PREPARING
        if self.reservation is not None:
            return ConnectorState.RESERVED
        if self.pending is not None:
            return ConnectorState.PREPARING
        return ConnectorState.AVAILABLE

    def charging_state(self) -> str:
        """2.0.1 ChargingStateEnumType for this connector."""
        state = self.state()
        if state in (ConnectorState.CHARGING, ConnectorState.SUSPENDED_EV, ConnectorState.SUSPENDED_EVSE):
            return state.value
        return "EVConnected" if self.ev is not None else "Idle"


@dataclass(frozen=True)
class StatusChanged:
    connector_id: int
    state: ConnectorState


@dataclass(frozen=True)
class TxStarted:
    session: Session
    sample: MeterSample
    trigger: TxTrigger
    seq_no: int
    charging_state: str


@dataclass(frozen=True)
class TxUpdated:
    session: Session
    samples: tuple[MeterSample, ...]
    trigger: TxTrigger
    seq_no: int
    charging_state: str


@dataclass(frozen=True)
class TxEnded:
    session: Session
    sample: MeterSample
    reason: StopReason
    trigger: TxTrigger
    seq_no: int
    begin_sample: MeterSample


@dataclass(frozen=True)
class ReservationEnded:
    reservation_id: int
    status: str


CoreEvent = StatusChanged | TxStarted | TxUpdated | TxEnded | ReservationEnded
