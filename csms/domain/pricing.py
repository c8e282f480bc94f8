"""A price quote: what a driver is shown before committing to a booking or a session.

The contract between bookings (which ask for a quote at booking time and store it) and tariffs (which compute it).
Money is ``Decimal`` in the tariff's currency, never float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

__all__ = ["PriceQuote", "PriceQuoter", "QuoteRequest"]


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    site_id: str
    starts_at: datetime
    ends_at: datetime
    energy_wh: float | None  # None: priced by the expected energy at the connector's power
    station_id: str | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class PriceQuote:
    currency: str
    tariff_id: str
    tier: str  # the demand / time-of-use tier that applied, e.g. "peak"
    energy_per_kwh: Decimal
    time_per_hour: Decimal
    session_fee: Decimal
    estimated_total: Decimal
    quoted_at: datetime
    valid_until: datetime


class PriceQuoter(Protocol):
    async def quote(self, request: QuoteRequest, now: datetime) -> PriceQuote: ...
