"""Charging transactions, version-neutral."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from csms.domain.metering import MeterSample
from csms.domain.stations import StationId

__all__ = ["Transaction", "TransactionStart", "TransactionState", "TransactionStop"]


class TransactionState(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class TransactionStart:
    """A charger's report that a transaction began (1.6 StartTransaction, 2.0.1 TransactionEvent Started).

    ``charger_tx_id`` is the 2.0.1 transactionId the charger chose; 1.6 chargers get ours instead.
    """

    station_id: StationId
    evse_id: int
    connector_id: int
    id_token: str | None
    timestamp: datetime
    meter_start_wh: float | None
    charger_tx_id: str | None = None
    reservation_id: int | None = None
    offline: bool = False
    seq_no: int | None = None
    trigger: str | None = None
    charging_state: str | None = None  # 2.0.1 chargingState (Charging, EVConnected, SuspendedEV, ...)


@dataclass(frozen=True, slots=True)
class TransactionStop:
    timestamp: datetime
    meter_stop_wh: float | None
    reason: str | None
    id_token: str | None = None
    samples: tuple[MeterSample, ...] = ()
    seq_no: int | None = None
    offline: bool = False


@dataclass(frozen=True, slots=True)
class Transaction:
    id: int
    station_id: StationId
    evse_id: int
    connector_id: int
    charger_tx_id: str
    id_token: str | None
    started_at: datetime
    meter_start_wh: float | None
    state: TransactionState
    stopped_at: datetime | None = None
    meter_stop_wh: float | None = None
    stop_reason: str | None = None
    reservation_id: int | None = None
    last_seq_no: int | None = None
    # 2.0.1 only: the seqNos seen (csms.domain.seq_numbers form, e.g. "0-5,7"; "0-5,7|0-2" after the station
    # counted from 0 again), the latest event timestamp of each numbering (ISO, "|" between numberings), the Started
    # event's seqNo (None until a Started arrives: the count is then taken to start at 0), and the numbers still
    # missing once the transaction ended (e.g. "6, 8-9"; None: no gap).
    seq_nos: str | None = None
    started_seq_no: int | None = None
    seq_no_gaps: str | None = None
    seq_latest_at: str | None = None
    # 2.0.1: the newest chargingState reported and the charger's timestamp of the event that reported it (an older
    # event arriving late does not replace it).
    charging_state: str | None = None
    charging_state_at: datetime | None = None

    @property
    def energy_wh(self) -> float | None:
        if self.meter_start_wh is None or self.meter_stop_wh is None:
            return None
        return max(0.0, self.meter_stop_wh - self.meter_start_wh)
