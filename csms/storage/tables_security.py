"""Charger security: per-station security profile and password hashes, security events, auth-failure audit (issue 6).

Tables share :data:`csms.storage.tables.metadata`; :mod:`csms.storage.schema` imports every table module.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table

from csms.storage.tables import Int64, UtcDateTime, metadata

__all__ = ["security_events", "station_credentials"]

# No foreign key to ``stations``: credentials may be provisioned before the station ever connects.
# Passwords are stored only as argon2id hashes (salted, slow; A01.FR.08).
station_credentials = Table(
    "station_credentials",
    metadata,
    Column("station_id", String(48), primary_key=True),
    Column("profile", Int64, nullable=False),  # csms.domain.security.SecurityProfile
    Column("password_hash", String(200)),
    Column("pending_hash", String(200)),  # the password being rotated to, until the station answers
    Column("pending_reason", String(20)),  # csms.domain.security.PendingRotation: which login settles it
    Column("password_set_at", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False),
)

security_events = Table(
    "security_events",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("kind", String(40), nullable=False),  # csms.domain.security.SecurityEventKind
    Column("station_id", String(48)),
    Column("remote_ip", String(64)),
    Column("detail", String(500), nullable=False),
)
Index("ix_security_events_station", security_events.c.station_id, security_events.c.id)
