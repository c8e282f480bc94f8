"""PostgreSQL: every integer column 64-bit, as SQLite's INTEGER is

The OCPP edge accepts any signed 64-bit integer (csms.protocol.schemas); PostgreSQL's INTEGER holds 32 bits, so a
seqNo, remoteStartId or connector id above 2**31 - 1 would fail its write there. Every INTEGER column becomes
BIGINT, and the sequence behind an autoincrementing key counts in 64 bits too. SQLite is not touched (its
INTEGER is 64-bit already). Columns added later use csms.storage.tables.Int64.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 12:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _integer_columns(of_type: type[sa.types.TypeEngine[int]]) -> list[tuple[str, str]]:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    return [
        (table, column["name"])
        for table in sorted(inspector.get_table_names())
        if table != "alembic_version"
        for column in inspector.get_columns(table)
        if type(column["type"]) is of_type
    ]


def _retype(table: str, column: str, sql_type: str) -> None:
    op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE {sql_type}')
    sequence = op.get_bind().execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": column})
    name = sequence.scalar()
    if name is not None:
        op.execute(f"ALTER SEQUENCE {name} AS {sql_type}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in _integer_columns(sa.INTEGER):
            _retype(table, column, "BIGINT")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in _integer_columns(sa.BIGINT):
            _retype(table, column, "INTEGER")
