"""Authentication and authorisation for the HTTP API: every request under /api/v1 resolves to a Principal.

Endpoints take ``principal: CurrentPrincipal`` and apply the access rules of :mod:`csms.domain.accounts`;
``require_admin`` and ``require_site`` are the common checks, raising :class:`~csms.errors.Forbidden` (403).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from csms.api.context import ApiContext
from csms.domain.accounts import BOOTSTRAP_ADMIN, Principal
from csms.errors import Forbidden, Unauthorized

__all__ = ["CurrentPrincipal", "current_principal", "require_admin", "require_site"]


async def current_principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    context: ApiContext = request.app.state.context
    expected = context.settings.admin_token
    if expected is None:
        return BOOTSTRAP_ADMIN
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <API key>'")
    if secrets.compare_digest(token.encode(), expected.get_secret_value().encode()):
        return BOOTSTRAP_ADMIN
    raise Unauthorized("unknown, revoked or expired API key")


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden(f"only an admin may do this (you are {principal.role.value})")


def require_site(principal: Principal, site_id: str) -> None:
    if not principal.may_manage_site(site_id):
        raise Forbidden(f"site {site_id} is not one of the sites you manage")
