"""availability: connector status history (issue 5)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 18:34:17.718552
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.storage.tables

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connector_status_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("at", csms.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("received_at", csms.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("connector_status_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_connector_status_history_connector", ["station_id", "evse_id", "connector_id", "at"], unique=False
        )
        batch_op.create_index("ix_connector_status_history_at", ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("connector_status_history", schema=None) as batch_op:
        batch_op.drop_index("ix_connector_status_history_at")
        batch_op.drop_index("ix_connector_status_history_connector")
    op.drop_table("connector_status_history")
