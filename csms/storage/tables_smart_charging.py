"""What drivers, operators and cars told smart charging about a session, kept across restarts.

Tables share :data:`csms.storage.tables.metadata`; :mod:`csms.storage.schema` imports every table module.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, String, Table

from csms.storage.tables import Int64, UtcDateTime, metadata

__all__ = ["charging_session_settings"]

# One row per transaction (our transactions.id) whose needs or priority were set. No foreign key: the
# transaction row is written by the same group commit, in no guaranteed order relative to this one.
charging_session_settings = Table(
    "charging_session_settings",
    metadata,
    Column("transaction_id", Int64, primary_key=True, autoincrement=False),
    Column("station_id", String(48), nullable=False),
    Column("evse_id", Int64, nullable=False),
    Column("energy_wh", Float),
    Column("departure", UtcDateTime()),
    Column("max_current_a", Float),
    Column("min_current_a", Float),
    Column("priority", String(16), nullable=False),  # csms.domain.grid.Priority name, lower case
    Column("priority_reason", String(200)),
    Column("priority_set_by", String(64)),  # who: an account id, "ev" (the car), "booking:<id>"...
    Column("updated_at", UtcDateTime(), nullable=False),
)
