"""What the HTTP API needs from the rest of the process, handed over explicitly at wiring time."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from csms.config import ApiSettings
from csms.runtime.bookings import BookingTimers
from csms.runtime.metrics import Metrics
from csms.runtime.registry import SessionRegistry
from csms.runtime.session import Clock
from csms.runtime.session_rules import SessionRulesLoop
from csms.runtime.smart_charging import SmartChargingLoop
from csms.service.accounts import AccountService
from csms.service.bookings import BookingService
from csms.service.charger import ChargerService
from csms.service.commands import CommandService
from csms.service.connectors import ConnectorSpecService
from csms.service.events import EventBus
from csms.service.grid import GridService
from csms.service.live import LiveServices
from csms.service.session_rules import SessionRulesService
from csms.service.smart_charging import SmartChargingService
from csms.service.station_security import StationSecurityService
from csms.service.tariffs import TariffService
from csms.storage.sql import SqlStorage

__all__ = ["ApiContext", "api_context"]


@dataclass(frozen=True, slots=True)
class ApiContext:
    settings: ApiSettings
    accounts: AccountService
    storage: SqlStorage
    chargers: ChargerService
    commands: CommandService
    registry: SessionRegistry
    metrics: Metrics
    clock: Clock
    grid: GridService
    events: EventBus
    smart_charging: SmartChargingService | None = None
    smart_charging_loop: SmartChargingLoop | None = None
    connector_specs: ConnectorSpecService | None = None
    live: LiveServices | None = None  # availability, live events, analytics
    bookings: BookingService | None = None
    booking_timers: BookingTimers | None = None
    security: StationSecurityService | None = None
    tariffs: TariffService | None = None
    session_rules: SessionRulesService | None = None
    session_rules_loop: SessionRulesLoop | None = None


def api_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context
