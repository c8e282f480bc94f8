"""Who may see a session's cost: admins all, operators their sites' sessions, drivers their own sessions."""

from __future__ import annotations

import pytest

from csms.api.tariffs import may_see_cost
from csms.domain.accounts import BOOTSTRAP_ADMIN, AccountId, Principal, Role

OPERATOR = Principal(AccountId("op-1"), Role.OPERATOR, "k1", frozenset({"north"}))
DRIVER = Principal(AccountId("driver-1"), Role.DRIVER, "k2")


@pytest.mark.parametrize(
    ("principal", "site_id", "account_id", "allowed"),
    [
        (BOOTSTRAP_ADMIN, "south", "driver-2", True),
        (BOOTSTRAP_ADMIN, None, None, True),
        (OPERATOR, "north", "driver-2", True),
        (OPERATOR, "south", "driver-2", False),
        (OPERATOR, None, "driver-2", False),
        (DRIVER, "north", "driver-1", True),
        (DRIVER, "north", "driver-2", False),
        (DRIVER, "north", None, False),
    ],
)
def test_cost_visibility_follows_the_role_rules(
    principal: Principal, site_id: str | None, account_id: str | None, allowed: bool
) -> None:
    """may_see_cost applies the access rules of csms.domain.accounts to a session's site and owner."""
    assert may_see_cost(principal, site_id, account_id) is allowed
