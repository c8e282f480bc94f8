"""What list endpoints share: the request context, limit/offset parameters and one page shape.

Every list answers ``{"items": [...], "limit": n, "offset": m, "next_offset": k | null}``; ``next_offset`` is
where the next page starts, or null when this page is the last (a full page may still be followed by an empty one).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import Depends, Path, Query

from csms.api.context import ApiContext, api_context

__all__ = ["INT64_MAX", "INT64_MIN", "Context", "Limit", "Offset", "RowId", "page", "plain"]

# The database holds signed 64-bit integers: a larger offset or id is a 422, not an OverflowError in the driver
# (a 500; found by schemathesis, tests/hostile/test_hostile_api_fuzz.py).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX)]
RowId = Annotated[int, Path(ge=INT64_MIN, le=INT64_MAX)]
Context = Annotated[ApiContext, Depends(api_context)]


def plain(value: Any) -> Any:
    """A dataclass as a dict (FastAPI encodes the rest)."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


def page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    """One page of a list that was read with ``limit`` and ``offset``."""
    return {
        "items": [plain(item) for item in items],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(items) >= limit else None,
    }
