"""Authentication and authorisation for the HTTP API: every request under /api/v1 resolves to a Principal.

A request carries ``Authorization: Bearer <API key>``; the key names an account with a role (csms.domain.accounts).
Endpoints take ``principal: CurrentPrincipal`` and apply the role rules through the helpers here, which all follow
one convention so ids do not leak: a role that may never use a route gets 403; a resource that exists but is not
the caller's (another operator's site or station, another driver's booking) gets the same 404 as one that does
not exist.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from csms.api.context import ApiContext
from csms.domain.accounts import BOOTSTRAP_ADMIN, Principal, Role
from csms.domain.grid import GridNode
from csms.errors import Forbidden, NotFound, Unauthorized

__all__ = [
    "CurrentPrincipal",
    "current_principal",
    "require_admin",
    "require_node",
    "require_site",
    "require_staff",
    "require_station",
    "visible_station_ids",
]


async def current_principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    context: ApiContext = request.app.state.context
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <API key>'")
    static = context.settings.admin_token
    if static is not None and secrets.compare_digest(token.encode(), static.get_secret_value().encode()):
        return BOOTSTRAP_ADMIN
    return await context.accounts.authenticate(token)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden(f"only an admin may do this (you are {principal.role.value})")


def require_staff(principal: Principal) -> None:
    """Admins and operators: routes that manage equipment, never a driver's."""
    if principal.role is Role.DRIVER:
        raise Forbidden("drivers may not do this: it is for operators and admins")


def require_site(principal: Principal, site_id: str) -> None:
    """The caller manages ``site_id``: drivers get 403; an operator gets 404 for a site not its own."""
    require_staff(principal)
    if not principal.may_manage_site(site_id):
        raise NotFound("site", site_id)


def require_node(context: ApiContext, principal: Principal, node_id: str) -> GridNode:
    """The grid node, when it is under one of the caller's sites: drivers get 403; a missing node or one under
    another operator's site the same 404."""
    require_staff(principal)
    node = context.grid.node(node_id)
    site_id = context.grid.setup.site_of_node(node_id)
    if site_id is None or not principal.may_manage_site(site_id):
        raise NotFound("grid node", node_id)
    return node


def require_station(context: ApiContext, principal: Principal, station_id: str) -> None:
    """The caller manages the station: admins any; operators those wired under their sites (else 404)."""
    require_staff(principal)
    if principal.is_admin:
        return
    site_id = context.grid.site_of_station(station_id)
    if site_id is None or not principal.may_manage_site(site_id):
        raise NotFound("station", station_id)


def visible_station_ids(context: ApiContext, principal: Principal) -> set[str] | None:
    """The stations an operator manages (None: every station, for an admin). Drivers get 403."""
    require_staff(principal)
    if principal.is_admin:
        return None
    return {station for site in principal.site_ids for station in context.grid.stations_of_site(site)}
