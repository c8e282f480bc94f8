"""Database schema (SQLAlchemy Core). Alembic migrations in ``csms/storage/migrations`` create it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
    func,
)

__all__ = [
    "Int64",
    "connectors",
    "grid_limit_windows",
    "grid_nodes",
    "id_tokens",
    "metadata",
    "meter_values",
    "reservations",
    "station_events",
    "station_variables",
    "station_wiring",
    "stations",
    "transactions",
    "UtcDateTime",
]

metadata = MetaData()

# Integers are 64-bit on both backends: SQLite's INTEGER is, and the OCPP edge accepts any signed 64-bit integer
# (csms.protocol.schemas), which PostgreSQL's 32-bit INTEGER could not store (BIGINT there; BIGSERIAL for an
# autoincrementing key). New columns and migrations use this type, never plain Integer.
Int64 = BigInteger().with_variant(Integer(), "sqlite")


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
    # SQLite ignores VARCHAR lengths: "ocpp2.0.1" (9 characters) fits there; PostgreSQL needs the wider column
    # (migration 0014; the SQLite column keeps its width, widening it would rebuild the table).
    Column("protocol", String(8).with_variant(String(16), "postgresql")),
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
    Column("evse_id", Int64, primary_key=True),
    Column("connector_id", Int64, primary_key=True),
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
    Column("id", Int64, primary_key=True, autoincrement=False),
    Column("station_id", String(48), ForeignKey("stations.id"), nullable=False),
    Column("evse_id", Int64, nullable=False),
    Column("connector_id", Int64, nullable=False),
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
    Column("reservation_id", Int64),
    Column("last_seq_no", Int64),
    Column("seq_nos", Text),  # 2.0.1: seqNos seen, csms.domain.seq_numbers form
    Column("started_seq_no", Int64),
    Column("seq_no_gaps", Text),  # seqNos missing when the transaction ended
    Column("seq_latest_at", Text),  # 2.0.1: latest event timestamp of each numbering of seq_nos
    Column("charging_state", String(24)),  # 2.0.1: newest chargingState reported ...
    Column("charging_state_at", UtcDateTime()),  # ... and the charger's time of the event that reported it
    Column("offline", Boolean, nullable=False, default=False),
    Column("remote_start_id", Int64),
    UniqueConstraint("station_id", "charger_tx_id", name="uq_transactions_charger_tx"),
)
Index("ix_transactions_active", transactions.c.station_id, transactions.c.state)
Index("ix_transactions_token", transactions.c.id_token, transactions.c.state)

meter_values = Table(
    "meter_values",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=True),
    Column("station_id", String(48), nullable=False),
    Column("evse_id", Int64, nullable=False),
    Column("transaction_id", Int64),
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
# Readings outside a transaction (1.6 MeterValues without transactionId, 2.0.1 MeterValues) are stored once: a
# charger resends a message the CSMS committed but could not answer (kill -9 between commit and reply), and no
# transaction row then tells the resend apart. The natural key is the station, the EVSE, the instant and which
# quantity was measured (measurand, phase, location, context); inserts skip a row that has it already. Readings of
# a transaction are deduplicated in csms.service.state (seeded from the database at start).
_OUTSIDE_TX_KEY = (
    meter_values.c.station_id,
    meter_values.c.evse_id,
    meter_values.c.timestamp,
    meter_values.c.measurand,
    func.coalesce(meter_values.c.phase, ""),
    func.coalesce(meter_values.c.location, ""),
    func.coalesce(meter_values.c.context, ""),
)
Index(
    "ux_meter_values_outside_tx",
    *_OUTSIDE_TX_KEY,
    unique=True,
    sqlite_where=meter_values.c.transaction_id.is_(None),
    postgresql_where=meter_values.c.transaction_id.is_(None),
)

station_events = Table(
    "station_events",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=True),
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
    Column("evse_id", Int64, primary_key=True, default=0),
    Column("connector_id", Int64, primary_key=True, default=0),
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
    Column("id", Int64, primary_key=True, autoincrement=False),
    Column("station_id", String(48), nullable=False),
    Column("evse_id", Int64),
    Column("id_token", String(36), nullable=False),
    Column("expiry", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# -- the electrical model (csms.domain.grid): site trees, limit windows, station wiring ------------------------

# A tree of nodes; a site is a node without a parent. The tree's rules (known parent, no cycle, phases a subset of
# the parent's) are checked by the service before anything is written, so parent_id carries no foreign key: one
# would also make the order of inserts matter inside a group commit.
grid_nodes = Table(
    "grid_nodes",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("parent_id", String(48)),
    Column("max_current_a", Float),  # per phase; NULL = not limited by current
    Column("max_power_w", Float),  # over all phases; NULL = not limited by power
    Column("phases", String(3), nullable=False),  # the grid phases carried, e.g. "123" or "2"
    Column("voltage_v", Float, nullable=False),
    # Live load we do not control, as last reported (PUT .../unmanaged-load); kept so it survives a restart.
    Column("unmanaged_l1_a", Float, nullable=False, default=0.0),
    Column("unmanaged_l2_a", Float, nullable=False, default=0.0),
    Column("unmanaged_l3_a", Float, nullable=False, default=0.0),
    Column("unmanaged_at", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# A temporary lower limit on a node: once (starts_at..ends_at) or daily (daily_start..daily_end local time in
# time_zone, on the ISO weekdays listed, e.g. "12345").
grid_limit_windows = Table(
    "grid_limit_windows",
    metadata,
    Column("id", Int64, primary_key=True, autoincrement=False),
    Column("node_id", String(48), ForeignKey("grid_nodes.id", ondelete="CASCADE"), nullable=False),
    Column("max_current_a", Float),
    Column("max_power_w", Float),
    Column("starts_at", UtcDateTime()),
    Column("ends_at", UtcDateTime()),
    Column("daily_start", String(8)),  # "HH:MM" or "HH:MM:SS"
    Column("daily_end", String(8)),
    Column("weekdays", String(7)),
    Column("time_zone", String(64)),
    Column("created_at", UtcDateTime(), nullable=False),
)
Index("ix_grid_limit_windows_node", grid_limit_windows.c.node_id)

# Where a station hangs in the tree. No foreign key to stations: wiring is usually configured before the station
# first connects (its stations row is created by its first BootNotification).
station_wiring = Table(
    "station_wiring",
    metadata,
    Column("station_id", String(48), primary_key=True),
    Column("node_id", String(48), ForeignKey("grid_nodes.id"), nullable=False),
    Column("rotation", String(3), nullable=False),  # grid phases wired to the station's L1, L2, L3, e.g. "231"
    Column("phases", Int64, nullable=False),
    Column("max_current_a", Float, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("ix_station_wiring_node", station_wiring.c.node_id)
