"""The whole database schema: every table module imported, so ``metadata`` holds every table.

Alembic's environment and the migration tests use this module; code that needs one table imports its module.
"""

from __future__ import annotations

from csms.storage import (  # noqa: F401  (imported for the tables they add to metadata)
    tables_accounts,
    tables_availability,
    tables_bookings,
    tables_security,
    tables_smart_charging,
    tables_tariffs,
)
from csms.storage.tables import metadata

__all__ = ["metadata"]
