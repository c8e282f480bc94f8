"""availability: connector metadata and status history (issue 5)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 18:34:17.718552
"""

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
