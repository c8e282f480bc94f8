"""Errors raised by the central system. One root; each subclass carries what a caller needs to report it.

::

    CsmsError
     ├── ConfigError                 invalid settings at start; message names the key
     ├── StorageError                the database could not read or commit
     ├── NotFound                    an id (station, token, transaction...) that does not exist
     ├── Conflict                    a request that contradicts stored state
     ├── InvalidRequest              an API request that is well-formed JSON but not acceptable
     └── StationError                an operator command could not get an answer from a charger
          ├── StationOffline         no live connection for the station
          ├── StationTimeout         the charger did not answer within the call timeout
          ├── StationCallError       the charger answered with a CALLERROR
          └── CommandNotSupported    the command does not exist in the station's OCPP version
"""

from __future__ import annotations

__all__ = [
    "CommandNotSupported",
    "ConfigError",
    "Conflict",
    "CsmsError",
    "InvalidRequest",
    "NotFound",
    "StationCallError",
    "StationError",
    "StationOffline",
    "StationTimeout",
    "StorageError",
]


class CsmsError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(CsmsError):
    """Settings could not be loaded."""


class StorageError(CsmsError):
    """The database failed; nothing was acknowledged for the failed write."""


class NotFound(CsmsError):
    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!s} not found")
        self.kind = kind
        self.key = key


class Conflict(CsmsError):
    """The request contradicts what is stored."""


class InvalidRequest(CsmsError):
    """A request that parsed but cannot be carried out as asked."""


class StationError(CsmsError):
    def __init__(self, station_id: str, message: str) -> None:
        super().__init__(f"station {station_id}: {message}")
        self.station_id = station_id


class StationOffline(StationError):
    def __init__(self, station_id: str) -> None:
        super().__init__(station_id, "not connected")


class StationTimeout(StationError):
    def __init__(self, station_id: str, action: str, seconds: float) -> None:
        super().__init__(station_id, f"no answer to {action} within {seconds:g} s")
        self.action = action


class StationCallError(StationError):
    def __init__(self, station_id: str, action: str, code: str, description: str) -> None:
        super().__init__(station_id, f"{action} answered with CALLERROR {code}: {description}")
        self.action = action
        self.code = code
        self.description = description


class CommandNotSupported(StationError):
    def __init__(self, station_id: str, command: str, version: str) -> None:
        super().__init__(station_id, f"{command} does not exist in OCPP {version}")
        self.command = command
