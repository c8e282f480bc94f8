"""OCPP versions we speak and the websocket subprotocol names that select them."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

__all__ = ["SUPPORTED_SUBPROTOCOLS", "OcppVersion", "select_version"]


class OcppVersion(StrEnum):
    V16 = "1.6"
    V201 = "2.0.1"

    @property
    def subprotocol(self) -> str:
        return f"ocpp{self.value}"


# Server preference order. ocpp2.1 is not offered: it is experimental in the ocpp library (drops unhandled
# actions, no SEND). Order matters when a charger offers several: a set would make the choice random.
SUPPORTED_SUBPROTOCOLS: tuple[str, ...] = (OcppVersion.V201.subprotocol, OcppVersion.V16.subprotocol)


def select_version(offered: Sequence[str]) -> OcppVersion | None:
    """Walk our ordered list and return the first version the charger offered, or None."""
    for subprotocol in SUPPORTED_SUBPROTOCOLS:
        if subprotocol in offered:
            return OcppVersion(subprotocol.removeprefix("ocpp"))
    return None
