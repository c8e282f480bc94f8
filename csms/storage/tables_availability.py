"""The connector status history that utilisation analytics read (issue 5).

Connector type and maximum power are the ``bookings`` area's connector specs (``tables_bookings``).
Tables share :data:`csms.storage.tables.metadata`; :mod:`csms.storage.schema` imports every table module.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table

from csms.storage.tables import Int64, UtcDateTime, metadata

__all__ = ["connector_status_history"]

# Every StatusNotification as it arrived, in the same commit as the connector's current status. ``at`` is the
# charger's timestamp (a status replayed from an offline queue lands at its own time), ``received_at`` ours.
# Rows are only appended: a transition is the status in effect from ``at`` until the next row of the connector.
connector_status_history = Table(
    "connector_status_history",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=True),
    Column("station_id", String(48), nullable=False),
    Column("evse_id", Int64, nullable=False),
    Column("connector_id", Int64, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error_code", String(40)),
    Column("at", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)
Index(
    "ix_connector_status_history_connector",
    connector_status_history.c.station_id,
    connector_status_history.c.evse_id,
    connector_status_history.c.connector_id,
    connector_status_history.c.at,
)
Index("ix_connector_status_history_at", connector_status_history.c.at)
