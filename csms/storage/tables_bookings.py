"""Bookings, their reservations on chargers, booking rules per site and driver strikes (issue 5).

Tables share :data:`csms.storage.tables.metadata`; :mod:`csms.storage.schema` imports every table module.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Index, String, Table

from csms.storage.tables import Int64, UtcDateTime, metadata

__all__ = ["booking_rules", "bookings", "connector_specs", "strikes"]

# What an operator said about a connector (csms.domain.connectors.ConnectorSpec). A connector without a row gets
# defaults from its station's wiring. No foreign key to connectors: specs are often set before a station connects.
connector_specs = Table(
    "connector_specs",
    metadata,
    Column("station_id", String(48), primary_key=True),
    Column("evse_id", Int64, primary_key=True),
    Column("connector_id", Int64, primary_key=True),
    Column("connector_type", String(16), nullable=False),
    Column("max_power_w", Float),  # NULL: from the station's wiring
    Column("bookable", Boolean, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# A driver's slot (csms.domain.bookings.Booking). The assigned connector changes when the booking is reassigned;
# ``reservation_id`` is the charger-side reservation of the current assignment (a new one per ReserveNow target).
bookings = Table(
    "bookings",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=False),
    Column("account_id", String(36), nullable=False),
    Column("id_token", String(36), nullable=False),
    Column("site_id", String(48), nullable=False),
    # What was asked for: a site (all NULL) or one connector; and an optional plug type.
    Column("wanted_station_id", String(48)),
    Column("wanted_evse_id", Int64),
    Column("wanted_connector_id", Int64),
    Column("connector_type", String(16)),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),  # no-show after this
    Column("energy_wh", Float),
    Column("priority", String(16), nullable=False),
    # Where it is placed now.
    Column("station_id", String(48)),
    Column("evse_id", Int64),
    Column("connector_id", Int64),
    Column("power_w", Float),
    Column("status", String(16), nullable=False),
    Column("reservation_id", Int64),
    Column("reserve_any", Boolean, nullable=False, default=False),
    Column("transaction_id", Int64),
    Column("quote", JSON),
    Column("reason", String(200)),  # why it failed, was cancelled or reassigned last
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("ix_bookings_status", bookings.c.status, bookings.c.starts_at)
Index("ix_bookings_account", bookings.c.account_id, bookings.c.starts_at)
Index("ix_bookings_site", bookings.c.site_id, bookings.c.starts_at)

# Booking rules of one site (csms.domain.bookings.BookingRules); NULL = no limit.
booking_rules = Table(
    "booking_rules",
    metadata,
    Column("site_id", String(48), primary_key=True),
    Column("no_overlap", Boolean, nullable=False),
    Column("max_active", Int64),
    Column("max_per_day", Int64),
    Column("max_per_week", Int64),
    Column("max_horizon_minutes", Int64),
    Column("min_notice_minutes", Int64),
    Column("max_duration_minutes", Int64),
    Column("strikes_to_block", Int64),
    Column("strike_window_days", Int64, nullable=False),
    Column("block_days", Int64, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# One no-show each.
strikes = Table(
    "strikes",
    metadata,
    Column("booking_id", Int64, primary_key=True, autoincrement=False),
    Column("account_id", String(36), nullable=False),
    Column("site_id", String(48), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)
Index("ix_strikes_account", strikes.c.account_id, strikes.c.at)
