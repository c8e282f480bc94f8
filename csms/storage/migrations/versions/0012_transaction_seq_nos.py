"""transactions: the 2.0.1 seqNos seen, the Started's seqNo and the seqNos missing at the end (gaps reported)

A 2.0.1 charger numbers each transaction's events from 0; a number that never arrived is a lost event. Rows from
before this migration have only last_seq_no: they are read as if every number up to it had arrived.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 03:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table copy: the transactions table may be large).
    op.add_column("transactions", sa.Column("seq_nos", sa.Text(), nullable=True))
    op.add_column("transactions", sa.Column("started_seq_no", sa.Integer(), nullable=True))
    op.add_column("transactions", sa.Column("seq_no_gaps", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.drop_column("seq_no_gaps")
        batch.drop_column("started_seq_no")
        batch.drop_column("seq_nos")
