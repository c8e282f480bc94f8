"""Accounts (admins, operators, drivers), the sites an operator manages, and API keys stored only as hashes.

Tables share :data:`csms.storage.tables.metadata`; :mod:`csms.storage.schema` imports every table module.
A driver's id tokens are the ``id_tokens`` rows whose ``owner`` is the account id.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table

from csms.storage.tables import UtcDateTime, metadata

__all__ = ["account_sites", "accounts", "api_keys"]

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),  # csms.domain.accounts.Role
    Column("email", String(254)),
    # The default priority of the account's sessions and bookings (csms.domain.grid.Priority name), and why.
    Column("priority", String(16), nullable=False, default="standard"),
    Column("priority_reason", String(200)),
    Column("priority_set_by", String(36)),
    Column("disabled_at", UtcDateTime()),
    Column("created_at", UtcDateTime(), nullable=False),
)

account_sites = Table(
    "account_sites",
    metadata,
    Column("account_id", String(36), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", String(48), primary_key=True),
)

# The key itself is shown once at creation; only its SHA-256 is stored (keys are 256-bit random, so a fast hash
# is enough: there is nothing to brute-force). ``id`` is the public prefix used to find the row.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("key_sha256", String(64), nullable=False),
    Column("name", String(100), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
    Column("last_used_at", UtcDateTime()),
)
Index("ix_api_keys_account", api_keys.c.account_id)
