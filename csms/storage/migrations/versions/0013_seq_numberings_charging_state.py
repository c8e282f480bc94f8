"""transactions: the latest event timestamp of each 2.0.1 seqNo numbering, and the newest chargingState with its time

An event numbered at or below the highest seqNo seen is no longer a replay by that alone (out of order, or counted
from 0 again after a reboot): the timestamps tell a new numbering from a resend, and a late event's chargingState
from a newer one. Rows from before have none: their next event sets them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.storage.tables

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table copy: the transactions table may be large).
    op.add_column("transactions", sa.Column("seq_latest_at", sa.Text(), nullable=True))
    op.add_column("transactions", sa.Column("charging_state", sa.String(length=24), nullable=True))
    op.add_column(
        "transactions", sa.Column("charging_state_at", csms.storage.tables.UtcDateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.drop_column("charging_state_at")
        batch.drop_column("charging_state")
        batch.drop_column("seq_latest_at")
