"""Tariffs, demand price tiers, session rules (maximum charging time, overstay) and session costs (issue 5).

Tables share :data:`csms.storage.tables.metadata`; :mod:`csms.storage.schema` imports every table module.
Money is stored as decimal text (:class:`DecimalText`) so no backend rounds it through a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Dialect, Float, Index, String, Table, TypeDecorator

from csms.storage.tables import Int64, UtcDateTime, metadata

__all__ = [
    "DEFAULT_SCOPE",
    "STARTS_SEEN",
    "DecimalText",
    "session_rules",
    "tariff_progress",
    "tariff_sessions",
    "tariffs",
]

# The key of the default tariff (for sites without their own); grid node ids start with a letter or digit.
DEFAULT_SCOPE = "*"


class DecimalText(TypeDecorator[Decimal]):
    """A Decimal kept exactly, as its text."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


tariffs = Table(
    "tariffs",
    metadata,
    Column("site_id", String(48), primary_key=True),  # DEFAULT_SCOPE for the default tariff
    Column("currency", String(3), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("energy_per_kwh", DecimalText(), nullable=False),
    Column("time_per_hour", DecimalText(), nullable=False),
    Column("session_fee", DecimalText(), nullable=False),
    Column("time_basis", String(16), nullable=False),
    Column("overstay_per_minute", DecimalText(), nullable=False),
    Column("overstay_cap", DecimalText()),
    Column("overstay_grace_minutes", Int64, nullable=False),
    Column("tiers", JSON, nullable=False),  # list of tier objects, as the API takes them
    Column("updated_at", UtcDateTime(), nullable=False),
)

session_rules = Table(
    "session_rules",
    metadata,
    Column("site_id", String(48), primary_key=True),
    Column("max_charging_minutes", Int64),  # NULL: not limited
    Column("warning_minutes", Int64, nullable=False),
    Column("at_limit", String(16), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# One row per priced or timed session: the price fixed at its start, its rule timers (so the timer loop
# survives restarts), overstay, and once it ended the cost breakdown. No foreign key to transactions: the row is
# written by its own group commit after the transaction's.
tariff_sessions = Table(
    "tariff_sessions",
    metadata,
    Column("transaction_id", Int64, primary_key=True, autoincrement=False),
    Column("station_id", String(48), nullable=False),
    Column("site_id", String(48)),
    Column("account_id", String(36)),  # the id token's owner: who sees the cost and gets the warnings
    # the price (NULL when no tariff applies)
    Column("tariff_id", String(60)),
    Column("currency", String(3)),
    Column("tier", String(200)),
    Column("price_source", String(16)),
    Column("energy_per_kwh", DecimalText()),
    Column("time_per_hour", DecimalText()),
    Column("session_fee", DecimalText()),
    Column("time_basis", String(16)),
    Column("overstay_per_minute", DecimalText()),
    Column("overstay_cap", DecimalText()),
    # the timers
    Column("started_at", UtcDateTime(), nullable=False),
    Column("limit_at", UtcDateTime()),
    Column("warning_at", UtcDateTime()),
    Column("at_limit", String(16), nullable=False),
    Column("grace_seconds", Int64, nullable=False),
    Column("warned_at", UtcDateTime()),
    Column("limit_reached_at", UtcDateTime()),
    Column("charging_completed_at", UtcDateTime()),
    Column("overstay_started_at", UtcDateTime()),
    Column("overstay_reason", String(24)),
    Column("connector_freed_at", UtcDateTime()),  # the car left (unplugged) while the transaction went on
    # the cost, once the session ended
    Column("ended_at", UtcDateTime()),
    Column("energy_wh", Float),
    Column("energy_cost", DecimalText()),
    Column("time_seconds", Int64),
    Column("time_cost", DecimalText()),
    Column("fee_cost", DecimalText()),
    Column("overstay_minutes", Int64),
    Column("overstay_cost", DecimalText()),
    Column("overstay_from", UtcDateTime()),
    Column("total", DecimalText()),
    Column("costed_at", UtcDateTime()),
)
Index("ix_tariff_sessions_open", tariff_sessions.c.costed_at)

# How far the session-rules loop got: ``STARTS_SEEN`` is the highest transaction id whose start it committed (its
# ``tariff_sessions`` row, or the decision not to follow it). After a crash, transactions above it (less a margin:
# starts commit slightly out of id order) that have no row are started again, so none goes uncosted.
tariff_progress = Table(
    "tariff_progress",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("transaction_id", Int64, nullable=False),
)
STARTS_SEEN = "starts_seen"
