"""PostgreSQL: stations.protocol wide enough for "ocpp2.0.1"

SQLite ignores VARCHAR lengths, so the 8 characters declared in 0001 never mattered there; PostgreSQL enforces
them. Only PostgreSQL's column changes (on SQLite a type change would rebuild the stations table).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("stations", "protocol", type_=sa.String(16), existing_type=sa.String(8))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("stations", "protocol", type_=sa.String(8), existing_type=sa.String(16))
