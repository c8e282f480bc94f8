"""Bookings, their reservations on chargers, booking rules per site and driver strikes (issue 5).

Tables share :data:`csms.storage.tables.metadata`; :mod:`csms.storage.schema` imports every table module.
"""

from __future__ import annotations

__all__: list[str] = []
