"""Tariffs, demand price tiers, session rules (maximum charging time, overstay) and session costs (issue 5).

Tables share :data:`csms.storage.tables.metadata`; :mod:`csms.storage.schema` imports every table module.
"""

from __future__ import annotations

__all__: list[str] = []
