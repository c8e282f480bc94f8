"""station_credentials.pending_reason: which login settles a password rotation the station's answer left open

A rotation the station answered RebootRequired is settled by its first login with the new password; one it never
answered (timeout, disconnect) by its next login with either password. Rows pending before this migration could
only come from RebootRequired (or a server stopped mid-rotation, which RebootRequired handling also keeps safe).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("station_credentials") as batch:
        batch.add_column(sa.Column("pending_reason", sa.String(20), nullable=True))
    op.execute("UPDATE station_credentials SET pending_reason = 'RebootRequired' WHERE pending_hash IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("station_credentials") as batch:
        batch.drop_column("pending_reason")
