"""meter values outside a transaction are stored once: unique (station, EVSE, instant, quantity) where no transaction

A charger resends a MeterValues the CSMS committed but did not answer (kill -9 between commit and reply); readings
without a transaction had nothing to recognise the resend by and were stored twice. Duplicates stored before this
migration are removed first (the oldest row of each key is kept).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 01:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = "station_id, evse_id, timestamp, measurand, COALESCE(phase, ''), COALESCE(location, ''), COALESCE(context, '')"


def upgrade() -> None:
    op.execute(
        "DELETE FROM meter_values WHERE transaction_id IS NULL AND id NOT IN "
        f"(SELECT MIN(id) FROM meter_values WHERE transaction_id IS NULL GROUP BY {_KEY})"
    )
    op.create_index(
        "ux_meter_values_outside_tx",
        "meter_values",
        [
            "station_id",
            "evse_id",
            "timestamp",
            "measurand",
            sa.text("coalesce(phase, '')"),
            sa.text("coalesce(location, '')"),
            sa.text("coalesce(context, '')"),
        ],
        unique=True,
        sqlite_where=sa.text("transaction_id IS NULL"),
        postgresql_where=sa.text("transaction_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_meter_values_outside_tx", table_name="meter_values")
