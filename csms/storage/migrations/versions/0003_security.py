"""security: per-station security profiles, password hashes, security events (issue 6)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:34:17.641265
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.storage.tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "station_credentials",
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("profile", sa.Integer(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("pending_hash", sa.String(length=200), nullable=True),
        sa.Column("password_set_at", csms.storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", csms.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("station_id"),
    )
    op.create_table(
        "security_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", csms.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("station_id", sa.String(length=48), nullable=True),
        sa.Column("remote_ip", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.create_index("ix_security_events_station", ["station_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.drop_index("ix_security_events_station")
    op.drop_table("security_events")
    op.drop_table("station_credentials")
