"""Who is calling the API: accounts with a role, and the access rules every endpoint applies.

An *admin* may do anything. An *operator* manages the sites listed on its account (stations wired under them,
their limits, bookings, tariffs and analytics) and nothing else. A *driver* sees and changes only its own account,
id tokens, bookings and sessions. The rules live here, as plain functions of a :class:`Principal`, so the API, the
CLI and the tests all share one definition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

__all__ = ["BOOTSTRAP_ADMIN", "AccountId", "Principal", "Role"]

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
