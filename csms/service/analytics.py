"""Analytics over a time range: who may see which scope, what to read, and the pure aggregation to apply.

Scope rules (:meth:`AnalyticsService.scope`): an admin sees everything; an operator only stations of its sites
(no site named: all of its sites); a driver none of the site figures, only its own user-behaviour figures.
Grid limits for peak-load reports are each site's configured base limit (limit windows are not replayed for the
past): its power limit, or its current limit x voltage x phases, whichever is lower.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from csms.domain.accounts import Principal, Role
from csms.domain.analytics import (
    ChargingPatterns,
    ConnectorUtilisation,
    LoadReport,
    UsageClass,
    UserFigures,
    charging_patterns,
    load_report,
    total_utilisation,
    user_behaviour,
    utilisation_from_times,
)
from csms.errors import Forbidden, NotFound
from csms.service.grid import GridService
from csms.storage.availability import AnalyticsReader

__all__ = ["AnalyticsService", "Scope", "SiteLoad", "UtilisationReport"]


@dataclass(frozen=True, slots=True)
class Scope:
    """What a report covers: stations (None = every station), optionally one EVSE, and the sites involved."""

    station_ids: list[str] | None
    site_ids: list[str]
    evse_id: int | None = None
    account_id: str | None = None  # only this account's sessions (a driver's own figures)


@dataclass(frozen=True, slots=True)
class UtilisationReport:
    connectors: list[ConnectorUtilisation]
    totals: dict[UsageClass, float]
    sites: dict[str, dict[UsageClass, float]]  # connector-seconds per class of each site in the scope


@dataclass(frozen=True, slots=True)
class SiteLoad:
    site_id: str
    report: LoadReport


class AnalyticsService:
    def __init__(self, reader: AnalyticsReader, grid: GridService) -> None:
        self._reader = reader
        self._grid = grid

    def sites(self) -> list[str]:
        return sorted(node.id for node in self._grid.setup.nodes.values() if node.parent_id is None)

    def scope(
        self,
        principal: Principal,
        site_id: str | None = None,
        station_id: str | None = None,
        evse_id: int | None = None,
        own_figures: bool = False,
    ) -> Scope:
        """The stations a report may cover for ``principal``; raises Forbidden or NotFound.

        ``own_figures``: the report is about the caller's own sessions, which a driver may see.
        """
        if principal.role is Role.DRIVER:
            if not own_figures:
                raise Forbidden("drivers see only their own figures (GET /analytics/users)")
            return Scope(None, [], evse_id, principal.account_id)
        if station_id is not None:
            site = self._grid.site_of_station(station_id)
            if site_id is not None and site != site_id:
                raise NotFound(f"station of site {site_id}", station_id)
            if not principal.is_admin and (site is None or not principal.may_manage_site(site)):
                raise NotFound("station", station_id)  # as every station route: ids elsewhere do not leak
            return Scope([station_id], [site] if site else [], evse_id)
        if site_id is not None:
            if site_id not in self.sites():
                raise NotFound("site", site_id)
            if not principal.may_manage_site(site_id):
                raise NotFound("site", site_id)  # another operator's site is as unknown as a missing one
            return Scope(self._grid.stations_of_site(site_id), [site_id], evse_id)
        if principal.is_admin:
            return Scope(None, self.sites(), evse_id)
        sites = [site for site in self.sites() if principal.may_manage_site(site)]
        stations = sorted({s for site in sites for s in self._grid.stations_of_site(site)})
        return Scope(stations, sites, evse_id)

    async def patterns(self, scope: Scope, start: datetime, end: datetime, tz: tzinfo) -> ChargingPatterns:
        sessions = await self._reader.sessions(scope.station_ids, start, end, scope.evse_id, scope.account_id)
        return charging_patterns(sessions, tz)

    async def users(self, scope: Scope, start: datetime, end: datetime) -> list[UserFigures]:
        """Sessions per account, with the no-show rate of the bookings due in the range and the overstay rate of
        the finished sessions the tariff service followed."""
        sessions = await self._reader.sessions(scope.station_ids, start, end, scope.evse_id, scope.account_id)
        tallies = await self._reader.booking_tallies(scope.station_ids, start, end, scope.account_id)
        overstayed = await self._reader.overstays(scope.station_ids, start, end, scope.evse_id, scope.account_id)
        return user_behaviour(sessions, tallies, overstayed)

    async def utilisation(self, scope: Scope, start: datetime, end: datetime) -> UtilisationReport:
        times = await self._reader.status_time(scope.station_ids, start, end, scope.evse_id)
        connectors = utilisation_from_times(times, start, end)
        by_site: dict[str, list[ConnectorUtilisation]] = {}
        for connector in connectors:
            site = self._grid.site_of_station(connector.station_id)
            if site is not None:
                by_site.setdefault(site, []).append(connector)
        sites = {site: total_utilisation(items) for site, items in sorted(by_site.items())}
        return UtilisationReport(connectors, total_utilisation(connectors), sites)

    async def load(self, scope: Scope, start: datetime, end: datetime, bucket: timedelta) -> list[SiteLoad]:
        """Per site in scope: its charging load in buckets against its limit."""
        reports = []
        for site_id in scope.site_ids:
            stations = self._grid.stations_of_site(site_id)
            if scope.station_ids is not None:
                stations = [s for s in stations if s in scope.station_ids]
            buckets = await self._reader.energy_buckets(stations, start, end, bucket) if stations else []
            reports.append(SiteLoad(site_id, load_report(buckets, start, end, bucket, self.site_limit_w(site_id))))
        return reports

    def site_limit_w(self, site_id: str) -> float | None:
        node = self._grid.setup.nodes.get(site_id)
        if node is None:
            return None
        limits = [node.max_power_w]
        if node.max_current_a is not None:
            limits.append(node.max_current_a * node.voltage_v * len(node.phases))
        known = [limit for limit in limits if limit is not None]
        return min(known) if known else None
