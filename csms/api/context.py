"""What the HTTP API needs from the rest of the process, handed over explicitly at wiring time."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from csms.config import ApiSettings
from csms.runtime.metrics import Metrics
from csms.runtime.registry import SessionRegistry
from csms.runtime.session import Clock
from csms.service.charger import ChargerService
from csms.service.commands import CommandService
from csms.storage.sql import SqlStorage

__all__ = ["ApiContext", "api_context"]


@dataclass(frozen=True, slots=True)
class ApiContext:
    settings: ApiSettings
    storage: SqlStorage
    chargers: ChargerService
    commands: CommandService
    registry: SessionRegistry
    metrics: Metrics
    clock: Clock


def api_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context
