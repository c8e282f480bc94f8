"""tariffs: connector freed time on sessions (overstay ends when the car leaves); how far session starts were seen

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 00:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.storage.tables

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tariff_progress",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("tariff_sessions") as batch:
        batch.add_column(sa.Column("connector_freed_at", csms.storage.tables.UtcDateTime(timezone=True), nullable=True))
    # Transactions older than this migration were handled (or not) by the code before it: never re-examined.
    op.execute(
        "INSERT INTO tariff_progress (name, transaction_id) "
        "SELECT 'starts_seen', COALESCE(MAX(id), 0) FROM transactions"
    )


def downgrade() -> None:
    with op.batch_alter_table("tariff_sessions") as batch:
        batch.drop_column("connector_freed_at")
    op.drop_table("tariff_progress")
