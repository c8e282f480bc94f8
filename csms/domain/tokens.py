"""Identification tokens (RFID cards, app ids) and the authorization rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["AuthorizationStatus", "IdTokenInfo", "IdTokenRecord", "authorize"]


class AuthorizationStatus(StrEnum):
    """1.6 AuthorizationStatus; 2.0.1 adds more values, of which we use the 1.6 subset plus Unknown."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class IdTokenRecord:
    token: str
    status: AuthorizationStatus
    token_type: str = "ISO14443"
    expiry: datetime | None = None
    parent_id: str | None = None
    group_id: str | None = None
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class IdTokenInfo:
    status: AuthorizationStatus
    expiry: datetime | None = None
    parent_id: str | None = None


def authorize(
    record: IdTokenRecord | None,
    now: datetime,
    allow_unknown: bool,
    has_other_active_transaction: bool = False,
) -> IdTokenInfo:
    """Decide whether ``record`` may charge at ``now``.

    An unknown token is Invalid unless ``allow_unknown`` (free-vend/demo sites). A token already charging
    elsewhere is ConcurrentTx, which 1.6 chargers show and refuse like Invalid.
    """
    if record is None:
        status = AuthorizationStatus.ACCEPTED if allow_unknown else AuthorizationStatus.INVALID
        return IdTokenInfo(status)
    if record.status is not AuthorizationStatus.ACCEPTED:
        return IdTokenInfo(record.status, record.expiry, record.parent_id)
    if record.expiry is not None and record.expiry <= now:
        return IdTokenInfo(AuthorizationStatus.EXPIRED, record.expiry, record.parent_id)
    if has_other_active_transaction:
        return IdTokenInfo(AuthorizationStatus.CONCURRENT_TX, record.expiry, record.parent_id)
    return IdTokenInfo(AuthorizationStatus.ACCEPTED, record.expiry, record.group_id or record.parent_id)
