"""Storage of accounts, the sites operators manage and API keys (tables in ``tables_accounts.py``).

Write builders are pure functions from domain values to :class:`Write` s, committed by the group-commit writer;
the read functions take a connection so the service decides when it reads.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.accounts import Account, AccountId, ApiKey, Role
from csms.storage.tables_accounts import account_sites, accounts, api_keys
from csms.storage.writer import Write

__all__ = [
    "insert_account",
    "insert_key",
    "read_accounts",
    "read_keys",
    "revoke_key",
    "touch_key",
    "update_account",
]

_INSERT_ACCOUNT = insert(accounts)
_INSERT_SITE = insert(account_sites)
_DELETE_SITES = delete(account_sites).where(account_sites.c.account_id == bindparam("b_account"))
_UPDATE_ACCOUNT = (
    update(accounts)
    .where(accounts.c.id == bindparam("b_id"))
    .values(
        name=bindparam("b_name"),
        role=bindparam("b_role"),
        email=bindparam("b_email"),
        priority=bindparam("b_priority"),
        priority_reason=bindparam("b_priority_reason"),
        priority_set_by=bindparam("b_priority_set_by"),
        disabled_at=bindparam("b_disabled_at"),
    )
)
_INSERT_KEY = insert(api_keys)
_REVOKE_KEY = update(api_keys).where(api_keys.c.id == bindparam("b_id")).values(revoked_at=bindparam("b_at"))
_TOUCH_KEY = update(api_keys).where(api_keys.c.id == bindparam("b_id")).values(last_used_at=bindparam("b_at"))


# -- reads --------------------------------------------------------------------------------------------------


async def read_accounts(conn: AsyncConnection) -> list[Account]:
    """Every account with its sites (accounts are few: the service keeps them all in memory)."""
    sites: dict[str, set[str]] = defaultdict(set)
    for row in (await conn.execute(select(account_sites))).all():
        sites[row.account_id].add(row.site_id)
    rows = (await conn.execute(select(accounts).order_by(accounts.c.id))).all()
    return [_account(row, frozenset(sites.get(row.id, ()))) for row in rows]


async def read_keys(conn: AsyncConnection) -> list[ApiKey]:
    rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id))).all()
    return [_key(row) for row in rows]


# -- writes -------------------------------------------------------------------------------------------------


def insert_account(account: Account) -> list[Write]:
    values = {"id": account.id, "created_at": account.created_at, **_account_values(account)}
    return [Write(_INSERT_ACCOUNT, values), *_site_writes(account)]


def update_account(account: Account) -> list[Write]:
    """Every changeable field, and the operator's sites replaced (delete + insert: the same on every database)."""
    values = {f"b_{name}": value for name, value in _account_values(account).items()}
    return [
        Write(_UPDATE_ACCOUNT, {"b_id": account.id, **values}),
        Write(_DELETE_SITES, {"b_account": account.id}),
        *_site_writes(account),
    ]


def insert_key(key: ApiKey) -> Write:
    return Write(
        _INSERT_KEY,
        {
            "id": key.id,
            "account_id": key.account_id,
            "key_sha256": key.key_sha256,
            "name": key.name,
            "created_at": key.created_at,
            "expires_at": key.expires_at,
            "revoked_at": key.revoked_at,
            "last_used_at": key.last_used_at,
        },
    )


def revoke_key(key_id: str, at: datetime) -> Write:
    return Write(_REVOKE_KEY, {"b_id": key_id, "b_at": at})


def touch_key(key_id: str, at: datetime) -> Write:
    return Write(_TOUCH_KEY, {"b_id": key_id, "b_at": at})


# -- rows ---------------------------------------------------------------------------------------------------


def _account_values(account: Account) -> dict[str, Any]:
    return {
        "name": account.name,
        "role": account.role.value,
        "email": account.email,
        "priority": account.priority,
        "priority_reason": account.priority_reason,
        "priority_set_by": account.priority_set_by,
        "disabled_at": account.disabled_at,
    }


def _site_writes(account: Account) -> list[Write]:
    return [Write(_INSERT_SITE, {"account_id": account.id, "site_id": site}) for site in sorted(account.site_ids)]


def _account(row: Row[Any], site_ids: frozenset[str]) -> Account:
    return Account(
        id=AccountId(row.id),
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
        email=row.email,
        site_ids=site_ids,
        priority=row.priority,
        priority_reason=row.priority_reason,
        priority_set_by=row.priority_set_by,
        disabled_at=row.disabled_at,
    )


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        account_id=AccountId(row.account_id),
        name=row.name,
        key_sha256=row.key_sha256,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )
