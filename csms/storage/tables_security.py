"""Charger security: per-station security profile and password hashes, security events, auth-failure audit (issue 6).

Tables share :data:`csms.storage.tables.metadata`; :mod:`csms.storage.schema` imports every table module.
"""

from __future__ import annotations

__all__: list[str] = []
