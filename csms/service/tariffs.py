"""Tariffs per site, demand at each site, quotes (the :class:`~csms.domain.pricing.PriceQuoter`) and session prices.

Tariffs are few and read on every quote and session start, so they are kept in memory and written through.
Demand: ``utilisation`` is the share of a site's known connectors (of its wired stations) occupied now, from the
status notifications seen (Occupied, Preparing, Charging, SuspendedEV, SuspendedEVSE, Finishing count);
``forecast`` is the share of them held by bookings (scheduled, reserved or active) overlapping the priced window,
or what an occupancy-forecast callable given to the service says. A session started from a booking is priced with
the quote stored on that booking (found by the transaction's reservation id).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from csms.config import TariffSettings
from csms.domain.pricing import PriceQuote, QuoteRequest
from csms.domain.stations import ConnectorState, ConnectorStatus
from csms.domain.tariffs import (
    Demand,
    Prices,
    SessionPrice,
    Tariff,
    TariffError,
    check_tariff,
    estimate,
    price_level,
)
from csms.errors import InvalidRequest, NotFound
from csms.service.grid import GridService
from csms.storage import tariffs as store
from csms.storage.sql import SqlStorage
from csms.storage.tariffs import TariffStore

__all__ = ["BookedQuote", "CostSource", "OccupancyForecast", "SessionStart", "TariffService", "booked_price"]

log = structlog.get_logger(__name__)

# The share of a site's connectors expected occupied between two instants (None: no idea).
OccupancyForecast = Callable[[str, datetime, datetime], Awaitable[float | None]]
# The quote stored with the booking a session was started from (by reservation id), if any.
BookedQuote = Callable[[int], Awaitable[PriceQuote | None]]
# A session's cost as data at an instant, or None (the session rules service, which follows sessions, gives it).
CostSource = Callable[[int, datetime], Awaitable[dict[str, Any] | None]]
# A starting session as pricing sees it: its site, its start and the reservation it was started from.
SessionStart = tuple[str | None, datetime, int | None]

_OCCUPIED = frozenset(
    {
        ConnectorStatus.OCCUPIED,
        ConnectorStatus.PREPARING,
        ConnectorStatus.CHARGING,
        ConnectorStatus.SUSPENDED_EV,
        ConnectorStatus.SUSPENDED_EVSE,
        ConnectorStatus.FINISHING,
    }
)


class TariffService:
    def __init__(
        self,
        storage: SqlStorage,
        reads: TariffStore,
        grid: GridService,
        settings: TariffSettings,
        forecast: OccupancyForecast | None = None,
        booked_quote: BookedQuote | None = None,
    ) -> None:
        self._storage = storage
        self._reads = reads
        self._grid = grid
        self._settings = settings
        self._forecast = forecast
        self._booked_quote: BookedQuote = booked_quote or reads.booked_quote
        self._quotes_from_store = booked_quote is None  # then many quotes are read at once
        self._tariffs: dict[str | None, Tariff] = {}
        self._costs: CostSource | None = None
        # station -> (evse, connector) -> last status; connector 0 (the whole station) is not a connector
        self._connectors: dict[str, dict[tuple[int, int], ConnectorStatus]] = {}

    async def load(self) -> None:
        self._tariffs = {tariff.site_id: tariff for tariff in await self._reads.tariffs()}
        for station_id in self._grid.setup.wirings:
            for state in await self._storage.list_connectors(station_id):
                self.connector_changed(state)

    # -- tariffs ---------------------------------------------------------------------------------------------

    def tariffs(self) -> list[Tariff]:
        """Every tariff, the default first."""
        return sorted(self._tariffs.values(), key=lambda tariff: (tariff.site_id is not None, tariff.site_id or ""))

    def tariff(self, site_id: str | None) -> Tariff:
        """The site's own tariff (``None``: the default).

        Raises:
            NotFound: none configured.
        """
        tariff = self._tariffs.get(site_id)
        if tariff is None:
            raise NotFound("tariff", f"of site {site_id}" if site_id else "default")
        return tariff

    def tariff_for(self, site_id: str | None) -> Tariff | None:
        """What a session at the site is priced by: the site's tariff, else the default, else none."""
        return self._tariffs.get(site_id) or self._tariffs.get(None)

    async def put(self, tariff: Tariff, now: datetime) -> Tariff:
        """Raises InvalidRequest naming the field that cannot be used; NotFound for an unknown site."""
        if tariff.site_id is not None:
            self._site(tariff.site_id)
        try:
            check_tariff(tariff)
        except TariffError as exc:
            raise InvalidRequest(str(exc)) from None
        await self._storage.write([store.put_tariff(tariff, now)])
        self._tariffs[tariff.site_id] = tariff
        log.info("tariff set", tariff_id=tariff.id, currency=tariff.currency, tiers=len(tariff.tiers))
        return tariff

    async def delete(self, site_id: str | None) -> None:
        self.tariff(site_id)
        await self._storage.write([store.delete_tariff(site_id)])
        del self._tariffs[site_id]

    # -- demand ----------------------------------------------------------------------------------------------

    def connector_changed(self, state: ConnectorState) -> None:
        if state.evse_id > 0:
            self._connectors.setdefault(state.station_id, {})[(state.evse_id, state.connector_id)] = state.status

    def utilisation(self, site_id: str) -> float:
        statuses = [
            status
            for station_id in self._grid.stations_of_site(site_id)
            for status in self._connectors.get(station_id, {}).values()
        ]
        if not statuses:
            return 0.0
        return sum(status in _OCCUPIED for status in statuses) / len(statuses)

    async def demand(self, site_id: str | None, starts_at: datetime, ends_at: datetime) -> Demand:
        if site_id is None:
            return Demand(0.0)
        if self._forecast is not None:
            forecast = await self._forecast(site_id, starts_at, ends_at)
        else:
            forecast = await self._booked_share(site_id, starts_at, ends_at)
        return Demand(self.utilisation(site_id), forecast)

    async def _booked_share(self, site_id: str, starts_at: datetime, ends_at: datetime) -> float | None:
        """Share of the site's connectors held by bookings in the window; None when its connectors are unknown."""
        connectors = sum(len(self._connectors.get(station, {})) for station in self._grid.stations_of_site(site_id))
        if connectors == 0:
            return None
        return min(1.0, await self._reads.booked_count(site_id, starts_at, ends_at) / connectors)

    # -- quotes and session prices ---------------------------------------------------------------------------

    async def quote(self, request: QuoteRequest, now: datetime) -> PriceQuote:
        """The price shown before a driver commits (a booking or a session now).

        Raises:
            NotFound: unknown site or station, or no tariff applies. InvalidRequest: the window is empty, or the
            station is not at the site.
        """
        site_id = self._site(request.site_id)
        if request.station_id is not None and self._grid.site_of_station(request.station_id) != site_id:
            raise InvalidRequest(f"station {request.station_id} is not wired under site {site_id}")
        if request.ends_at <= request.starts_at:
            raise InvalidRequest("ends_at must be after starts_at")
        tariff = self.tariff_for(site_id)
        if tariff is None:
            raise NotFound("tariff", f"for site {site_id} (and no default tariff)")
        demand = await self.demand(site_id, request.starts_at, request.ends_at)
        level = price_level(tariff, request.starts_at, demand)
        energy_wh = request.energy_wh
        if energy_wh is None:
            hours = (request.ends_at - request.starts_at).total_seconds() / 3600
            energy_wh = self._power_w(request.station_id) * hours
        total = estimate(level.prices, tariff.currency, request.starts_at, request.ends_at, energy_wh)
        return PriceQuote(
            currency=tariff.currency,
            tariff_id=tariff.id,
            tier=level.tier,
            energy_per_kwh=level.prices.energy_per_kwh,
            time_per_hour=level.prices.time_per_hour,
            session_fee=level.prices.session_fee,
            estimated_total=total,
            quoted_at=now,
            valid_until=now + timedelta(minutes=self._settings.quote_validity_minutes),
        )

    async def session_price(
        self, site_id: str | None, started_at: datetime, reservation_id: int | None
    ) -> SessionPrice | None:
        """What a starting session is charged at: its booked quote, else the tier in force at its start."""
        [price] = await self.session_prices([(site_id, started_at, reservation_id)])
        return price

    async def session_prices(self, starts: Sequence[SessionStart]) -> list[SessionPrice | None]:
        """:meth:`session_price` of many starting sessions, with one read of their booked quotes.

        The bookings are read for the demand forecast only where the tariff has a tier that uses it.
        """
        wanted = [reservation for site, _, reservation in starts if reservation is not None and self.tariff_for(site)]
        quotes: dict[int, PriceQuote] = {}
        if wanted and self._quotes_from_store:
            quotes = await self._reads.booked_quotes(wanted)
        else:
            for reservation_id in wanted:
                quote = await self._booked_quote(reservation_id)
                if quote is not None:
                    quotes[reservation_id] = quote
        return [
            await self._price(site, started_at, None if reservation is None else quotes.get(reservation))
            for site, started_at, reservation in starts
        ]

    async def _price(self, site_id: str | None, started_at: datetime, quote: PriceQuote | None) -> SessionPrice | None:
        tariff = self.tariff_for(site_id)
        if tariff is None:
            return None
        if quote is not None:
            return booked_price(
                quote,
                SessionPrice(
                    tariff.id, tariff.currency, "", tariff.prices, tariff.time_basis, tariff.overstay, "tariff"
                ),
            )
        # A session counts itself: it is on its connector when it starts.
        if any(tier.min_forecast is not None for tier in tariff.tiers):
            demand = await self.demand(site_id, started_at, started_at + timedelta(hours=1))
        else:
            demand = Demand(self.utilisation(site_id) if site_id is not None else 0.0)
        level = price_level(tariff, started_at, demand)
        return SessionPrice(
            tariff.id, tariff.currency, level.tier, level.prices, tariff.time_basis, tariff.overstay, "tariff"
        )

    # -- session costs ---------------------------------------------------------------------------------------

    def bind_costs(self, costs: CostSource) -> None:
        self._costs = costs

    async def cost_summary(self, transaction_id: int, now: datetime | None = None) -> dict[str, Any] | None:
        """A session's cost breakdown as JSON-ready data, or None when no tariff applied to it (or it is unknown).

        ``final`` is true once the session ended (the stored breakdown); for a session in progress it is what the
        session comes to at ``now`` (pass the server's clock; the wall clock when left out). Besides the fields of
        ``GET /transactions/{id}/cost`` it carries ``site_id`` and ``account_id`` (the id token's owner), which
        decide who may see it, and ``overstay.connector_freed_at``.
        """
        if self._costs is None:
            return None
        return await self._costs(transaction_id, now or datetime.now(UTC))

    # -- helpers ---------------------------------------------------------------------------------------------

    def _site(self, site_id: str) -> str:
        """Raises NotFound unless ``site_id`` is a site (a grid node without a parent)."""
        node = self._grid.node(site_id)
        if node.parent_id is not None:
            raise InvalidRequest(f"grid node {site_id} is not a site (its parent is {node.parent_id})")
        return site_id

    def _power_w(self, station_id: str | None) -> float:
        if station_id is not None:
            wiring = self._grid.setup.wirings.get(station_id)
            if wiring is not None:
                voltage = self._grid.node(wiring.node_id).voltage_v
                return wiring.max_current_a * wiring.phases * voltage
        return self._settings.default_power_kw * 1000


def booked_price(quote: PriceQuote, current: SessionPrice) -> SessionPrice:
    """The price of a session started from a booking: the quoted prices, with the tariff's time basis and overstay."""
    return SessionPrice(
        tariff_id=quote.tariff_id,
        currency=quote.currency,
        tier=quote.tier,
        prices=Prices(quote.energy_per_kwh, quote.time_per_hour, quote.session_fee),
        time_basis=current.time_basis,
        overstay=current.overstay,
        source="booking",
    )
