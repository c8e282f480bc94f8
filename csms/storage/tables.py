"""Database schema (SQLAlchemy Core). Alembic migrations in ``csms/storage/migrations`` create it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

__all__ = [
    "connectors",
    "id_tokens",
    "metadata",
    "meter_values",
    "reservations",
    "station_events",
    "station_variables",
    "stations",
    "transactions",
    "UtcDateTime",
]

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend stores.

    SQLite has no time zone type: values are normalised to UTC before they are stored without an offset, and
    read back as UTC. A naive datetime is a programming error here, never silently taken as local time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the database")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        result: datetime = value
        return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)


stations = Table(
    "stations",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("registration", String(16), nullable=False),
    Column("protocol", String(8)),
    Column("vendor", String(50)),
    Column("model", String(50)),
    Column("serial_number", String(50)),
    Column("firmware_version", String(50)),
    Column("boot_reason", String(32)),
    Column("firmware_status", String(40)),
    Column("diagnostics_status", String(40)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_boot_at", UtcDateTime()),
    Column("last_seen_at", UtcDateTime()),
)

connectors = Table(
    "connectors",
    metadata,
    Column("station_id", String(48), ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True),
    Column("evse_id", Integer, primary_key=True),
    Column("connector_id", Integer, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("error_code", String(40)),
    Column("info", String(50)),
    Column("vendor_error_code", String(50)),
    Column("status_at", UtcDateTime(), nullable=False),
)

id_tokens = Table(
    "id_tokens",
    metadata,
    Column("token", String(36), primary_key=True),
    Column("token_type", String(20), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expiry", UtcDateTime()),
    Column("parent_id", String(36)),
    Column("group_id", String(36)),
    Column("owner", String(100)),
    Column("created_at", UtcDateTime(), nullable=False),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("station_id", String(48), ForeignKey("stations.id"), nullable=False),
    Column("evse_id", Integer, nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("charger_tx_id", String(36), nullable=False),
    Column("id_token", String(36)),
    Column("auth_status", String(16)),
    Column("state", String(8), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("meter_start_wh", Float),
    Column("stopped_at", UtcDateTime()),
    Column("meter_stop_wh", Float),
    Column("stop_reason", String(32)),
    Column("stop_id_token", String(36)),
    Column("reservation_id", Integer),
    Column("last_seq_no", Integer),
    Column("offline", Boolean, nullable=False, default=False),
    Column("remote_start_id", Integer),
    UniqueConstraint("station_id", "charger_tx_id", name="uq_transactions_charger_tx"),
)
Index("ix_transactions_active", transactions.c.station_id, transactions.c.state)
Index("ix_transactions_token", transactions.c.id_token, transactions.c.state)

meter_values = Table(
    "meter_values",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", String(48), nullable=False),
    Column("evse_id", Integer, nullable=False),
    Column("transaction_id", Integer),
    Column("timestamp", UtcDateTime(), nullable=False),
    Column("measurand", String(48), nullable=False),
    Column("phase", String(8)),
    Column("unit", String(16)),
    Column("context", String(24)),
    Column("location", String(8)),
    Column("value", Float),  # NULL when the charger sent no plain number: see raw_value
    Column("raw_value", Text),  # signed meter data or an unparsable value, verbatim
)
Index("ix_meter_values_tx", meter_values.c.transaction_id, meter_values.c.timestamp)

station_events = Table(
    "station_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", String(48), nullable=False),
    Column("action", String(48), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("payload", JSON, nullable=False),
)
Index("ix_station_events_station", station_events.c.station_id, station_events.c.action, station_events.c.id)

station_variables = Table(
    "station_variables",
    metadata,
    Column("station_id", String(48), primary_key=True),
    Column("component", String(50), primary_key=True),
    Column("component_instance", String(50), primary_key=True, default=""),
    Column("evse_id", Integer, primary_key=True, default=0),
    Column("connector_id", Integer, primary_key=True, default=0),
    Column("variable", String(50), primary_key=True),
    Column("variable_instance", String(50), primary_key=True, default=""),
    Column("attribute_type", String(8), primary_key=True, default="Actual"),
    Column("value", Text),
    Column("mutability", String(10)),
    Column("updated_at", UtcDateTime(), nullable=False),
)

reservations = Table(
    "reservations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("station_id", String(48), nullable=False),
    Column("evse_id", Integer),
    Column("id_token", String(36), nullable=False),
    Column("expiry", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
