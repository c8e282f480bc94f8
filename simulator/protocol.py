"""The interface between the version-neutral station and a protocol version (1.6 / 2.0.1)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from simulator.model import ConnectorState, MeterSample, Protocol, Settings
from simulator.outbox import OutboxItem
from simulator.state import CoreEvent

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from simulator.station import SimStation

__all__ = ["BootResult", "ProtocolHandler"]


@dataclass(frozen=True)
class BootResult:
    status: str
    interval: int


class ProtocolHandler(ABC):
    """Builds the version's messages and creates its `ocpp` ChargePoint with the CSMS-call handlers."""

    protocol: ClassVar[Protocol]

    def __init__(self, station: SimStation) -> None:
        self.station = station
        self.firmware_status = "Idle"
        self.log_status = "Idle"

    @abstractmethod
    def settings(self) -> Settings: ...

    @abstractmethod
    def new_tx_key(self) -> str: ...

    @abstractmethod
    def create_charge_point(self, ws: ClientConnection) -> Any:
        """An `ocpp` ChargePoint subclass instance bound to this connection."""

    @abstractmethod
    def boot_request(self, reason: str) -> Any: ...

    def boot_result(self, result: Any) -> BootResult:
        return BootResult(str(result.status), int(result.interval))

    @abstractmethod
    def heartbeat_request(self) -> Any: ...

    @abstractmethod
    def authorize_request(self, id_tag: str) -> Any: ...

    @abstractmethod
    def authorize_status(self, result: Any) -> str: ...

    @abstractmethod
    def status_item(self, connector_id: int, state: ConnectorState) -> OutboxItem | None: ...

    @abstractmethod
    def event_items(self, event: CoreEvent) -> list[OutboxItem]:
        """Messages for a core event (status changes, transaction events, reservation expiry)."""

    @abstractmethod
    def meter_values_item(self, connector_id: int, sample: MeterSample) -> OutboxItem:
        """Non-transaction MeterValues (e.g. on TriggerMessage with no transaction running)."""

    @abstractmethod
    def firmware_status_item(self, status: str, request_id: int | None) -> OutboxItem: ...

    @abstractmethod
    def log_status_item(self, status: str, request_id: int | None) -> OutboxItem: ...

    @abstractmethod
    def security_event_item(self, event_type: str, tech_info: str | None = None) -> OutboxItem: ...

    @abstractmethod
    def heartbeat_interval_set(self, seconds: int) -> None:
        """Store the interval a BootNotification response gave (spec: it overrides the setting)."""
