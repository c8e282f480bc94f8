"""Who is calling the API: accounts with a role, and the access rules every endpoint applies.

An *admin* may do anything. An *operator* manages the sites listed on its account (stations wired under them,
their limits, bookings, tariffs and analytics) and nothing else. A *driver* sees and changes only its own account,
id tokens, bookings and sessions. The rules live here, as plain functions of a :class:`Principal`, so the API, the
CLI and the tests all share one definition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NewType

__all__ = [
    "BOOTSTRAP_ADMIN",
    "KEY_PREFIX",
    "Account",
    "AccountId",
    "ApiKey",
    "Principal",
    "Role",
    "key_text",
    "principal_of",
    "secret_hash",
    "split_key",
]

AccountId = NewType("AccountId", str)


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    DRIVER = "driver"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request.

    ``key_id`` names the API key used (``"config"`` for the bootstrap admin token from the settings);
    ``site_ids`` are the sites an operator manages (empty for other roles).
    """

    account_id: AccountId
    role: Role
    key_id: str
    site_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may_manage_site(self, site_id: str) -> bool:
        """Admins manage every site; operators the sites on their account; drivers none."""
        return self.is_admin or (self.role is Role.OPERATOR and site_id in self.site_ids)

    def may_manage_any_of(self, site_ids: Iterable[str]) -> bool:
        return any(self.may_manage_site(site_id) for site_id in site_ids)

    def may_act_for(self, account_id: str) -> bool:
        """Whether the caller may see or change data owned by ``account_id`` (a driver: only its own).

        Operators act for drivers only through site-scoped checks (a booking at one of their sites), so this is
        true for them only for their own account.
        """
        return self.is_admin or account_id == self.account_id


BOOTSTRAP_ADMIN = Principal(account_id=AccountId("admin"), role=Role.ADMIN, key_id="config")


# -- accounts and API keys ----------------------------------------------------------------------------------

KEY_PREFIX = "csms"
"""API keys read ``csms_<key id>_<secret>``: the id finds the stored hash, the secret is what is checked."""


@dataclass(frozen=True, slots=True)
class Account:
    id: AccountId
    name: str
    role: Role
    created_at: datetime
    email: str | None = None
    site_ids: frozenset[str] = field(default_factory=frozenset)
    # The default priority class of the account's sessions and bookings (csms.domain.grid.Priority name), and why.
    priority: str = "standard"
    priority_reason: str | None = None
    priority_set_by: str | None = None
    disabled_at: datetime | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: never the secret itself, only its SHA-256."""

    id: str
    account_id: AccountId
    name: str
    key_sha256: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def state_at(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


def key_text(key_id: str, secret: str) -> str:
    return f"{KEY_PREFIX}_{key_id}_{secret}"


def split_key(text: str) -> tuple[str, str] | None:
    """The key id and secret of a presented key; None when it does not look like one of ours."""
    prefix, _, rest = text.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id or not secret or len(key_id) > 16:
        return None
    return key_id, secret


def secret_hash(secret: str) -> str:
    """Keys carry 256 random bits, so a fast hash suffices: there is no guessable input to stretch."""
    return hashlib.sha256(secret.encode()).hexdigest()


def principal_of(account: Account, key_id: str) -> Principal:
    site_ids = account.site_ids if account.role is Role.OPERATOR else frozenset()
    return Principal(account_id=account.id, role=account.role, key_id=key_id, site_ids=site_ids)
