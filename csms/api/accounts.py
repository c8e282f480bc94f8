"""Accounts and API keys: ``/me``, ``/accounts`` and ``/accounts/{id}/api-keys``.

Who may: admins manage every account and key. Everyone reads its own account (``/me`` or ``/accounts/{own id}``)
and manages its own keys (create, list, revoke), so an app can rotate its key without an admin. Another account
is the same 404 as a missing one. A key's secret is in the answer that creates it and nowhere else.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from csms.api.auth import CurrentPrincipal, require_admin
from csms.api.context import ApiContext
from csms.api.paging import Context, Limit, Offset, page
from csms.domain.accounts import Account, ApiKey, Principal, Role
from csms.errors import NotFound

__all__ = ["router"]

router = APIRouter(tags=["accounts"])

AccountPath = Annotated[str, Path(min_length=1, max_length=36)]
KeyPath = Annotated[str, Path(min_length=1, max_length=16)]
Priority = Literal["standard", "fleet", "urgent"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountCreate(_Body):
    id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._@-]{1,36}$", description="chosen id; default: a random UUID"
    )
    name: str = Field(min_length=1, max_length=100)
    role: Role
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    site_ids: list[str] = Field(default_factory=list, max_length=1000, description="operators: the sites managed")
    priority: Priority = Field(default="standard", description="default priority of the account's sessions")
    priority_reason: str | None = Field(default=None, max_length=200)


class AccountUpdate(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    role: Role | None = None
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    site_ids: list[str] | None = Field(default=None, max_length=1000)
    priority: Priority | None = None
    priority_reason: str | None = Field(default=None, max_length=200)
    disabled: bool | None = Field(default=None, description="a disabled account's keys stop working at once")


class KeyCreate(_Body):
    name: str = Field(min_length=1, max_length=100, description="what the key is for, e.g. 'fleet app'")
    expires_at: AwareDatetime | None = None


@router.get("/me")
async def who_am_i(ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    """The caller's account, role, sites and the key it used."""
    account = ctx.accounts.find(principal.account_id)
    body = account_body(account) if account is not None else _static_admin_body(principal)
    return {**body, "key_id": principal.key_id}


@router.get("/accounts")
async def list_accounts(
    ctx: Context, principal: CurrentPrincipal, role: Role | None = None, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    require_admin(principal)
    accounts = ctx.accounts.accounts(role)
    return page([account_body(a) for a in accounts[offset : offset + limit]], limit, offset)


@router.post("/accounts", status_code=201)
async def create_account(
    body: AccountCreate, ctx: Context, principal: CurrentPrincipal, response: Response
) -> dict[str, Any]:
    """A new admin, operator (with the sites it manages) or driver; then give it a key."""
    require_admin(principal)
    account = await ctx.accounts.create_account(
        body.name,
        body.role,
        account_id=body.id,
        email=body.email,
        site_ids=body.site_ids,
        priority=body.priority,
        priority_reason=body.priority_reason,
        set_by=principal.account_id,
        known_sites=_site_ids(ctx),
    )
    response.headers["Location"] = f"/api/v1/accounts/{account.id}"
    return account_body(account)


@router.get("/accounts/{account_id}")
async def get_account(account_id: AccountPath, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    return account_body(_visible(ctx, principal, account_id))


@router.patch("/accounts/{account_id}")
async def update_account(
    account_id: AccountPath, body: AccountUpdate, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Change fields (only those sent); ``disabled: true`` locks the account out, ``false`` lets it back in."""
    require_admin(principal)
    changes = body.model_dump(include=body.model_fields_set)
    for required in ("name", "role", "priority"):
        if required in changes and changes[required] is None:
            changes.pop(required)
    account = await ctx.accounts.update_account(account_id, changes, principal.account_id, _site_ids(ctx))
    return account_body(account)


@router.get("/accounts/{account_id}/api-keys")
async def list_keys(account_id: AccountPath, ctx: Context, principal: CurrentPrincipal) -> dict[str, Any]:
    _visible(ctx, principal, account_id)
    now = ctx.clock()
    return {"items": [key_body(k, now) for k in ctx.accounts.keys_of(account_id)]}


@router.post("/accounts/{account_id}/api-keys", status_code=201)
async def create_key(
    account_id: AccountPath, body: KeyCreate, ctx: Context, principal: CurrentPrincipal, response: Response
) -> dict[str, Any]:
    """A new key; the answer's ``key`` is the only time the secret is shown: store it now."""
    _visible(ctx, principal, account_id)
    new = await ctx.accounts.create_key(account_id, body.name, body.expires_at)
    response.headers["Location"] = f"/api/v1/accounts/{account_id}/api-keys/{new.key.id}"
    return {**key_body(new.key, ctx.clock()), "key": new.text}


@router.delete("/accounts/{account_id}/api-keys/{key_id}")
async def revoke_key(
    account_id: AccountPath, key_id: KeyPath, ctx: Context, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Revoke a key (kept, marked revoked, for the record); it stops working with the next request."""
    _visible(ctx, principal, account_id)
    return key_body(await ctx.accounts.revoke_key(account_id, key_id), ctx.clock())


# -- bodies -------------------------------------------------------------------------------------------------


def account_body(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "role": account.role.value,
        "email": account.email,
        "site_ids": sorted(account.site_ids),
        "priority": account.priority,
        "priority_reason": account.priority_reason,
        "priority_set_by": account.priority_set_by,
        "disabled": account.disabled,
        "disabled_at": account.disabled_at,
        "created_at": account.created_at,
    }


def key_body(key: ApiKey, now: Any) -> dict[str, Any]:
    return {
        "id": key.id,
        "account_id": key.account_id,
        "name": key.name,
        "state": key.state_at(now),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
    }


def _static_admin_body(principal: Principal) -> dict[str, Any]:
    """The admin of ``api.admin_token``: an account in the settings, not in the database."""
    return {"id": principal.account_id, "name": "admin (api.admin_token)", "role": principal.role.value}


def _visible(ctx: ApiContext, principal: Principal, account_id: str) -> Account:
    account = ctx.accounts.find(account_id)
    if account is None or not principal.may_act_for(account_id):
        raise NotFound("account", account_id)
    return account


def _site_ids(ctx: ApiContext) -> list[str]:
    return [node.id for node in ctx.grid.setup.nodes.values() if node.parent_id is None]
