"""Errors raised by the central system. One root; each subclass carries what a caller needs to report it.

::

    CsmsError
     ├── ConfigError                 invalid settings at start; message names the key
     ├── StorageError                the database could not read or commit
     ├── NotFound                    an id (station, token, transaction...) that does not exist
     ├── Conflict                    a request that contradicts stored state
     ├── InvalidRequest              an API request that is well-formed JSON but not acceptable
     │    └── RuleViolation          a booking or session rule refused the request; names the rule and its limit
     ├── Unauthorized                no or an unknown API credential
     ├── Forbidden                   a known caller asking for what its role or sites do not allow
     └── StationError                an operator command could not get an answer from a charger
          ├── StationOffline         no live connection for the station
          ├── StationTimeout         the charger did not answer within the call timeout
          ├── StationCallError       the charger answered with a CALLERROR
          ├── StationBadAnswer       the charger's answer was unusable (malformed, schema-invalid, unknown code)
          └── CommandNotSupported    the command does not exist in the station's OCPP version
"""

from __future__ import annotations

__all__ = [
    "CommandNotSupported",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "CsmsError",
    "InvalidRequest",
    "NotFound",
    "RuleViolation",
    "StationBadAnswer",
    "StationCallError",
    "StationError",
    "StationOffline",
    "StationTimeout",
    "StorageError",
    "Unauthorized",
]


class CsmsError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(CsmsError):
    """Settings could not be loaded."""


class StorageError(CsmsError):
    """The database failed; nothing was acknowledged for the failed write."""


class UnstorableValue(StorageError):
    """The database refused a value itself (SQLSTATE class 22, a data exception), e.g. a NUL character, which
    PostgreSQL text cannot hold: the sender's input, not a fault of the server."""


class NotFound(CsmsError):
    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!s} not found")
        self.kind = kind
        self.key = key


class Conflict(CsmsError):
    """The request contradicts what is stored."""


class InvalidRequest(CsmsError):
    """A request that parsed but cannot be carried out as asked."""


class RuleViolation(InvalidRequest):
    """A configured rule refused the request. ``rule`` is its stable name, ``limit`` the configured value."""

    def __init__(self, rule: str, limit: object, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.limit = limit


class Unauthorized(CsmsError):
    """The request carries no credential, or one that is unknown, revoked or expired."""


class Forbidden(CsmsError):
    """The caller is known but its role or sites do not allow this."""


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


class StationBadAnswer(StationError):
    """The charger answered, but with nothing usable: ``problem`` says what was wrong with the answer."""

    def __init__(self, station_id: str, action: str, problem: str) -> None:
        super().__init__(station_id, f"unusable answer to {action}: {problem}")
        self.action = action
        self.problem = problem


class CommandNotSupported(StationError):
    def __init__(self, station_id: str, command: str, version: str) -> None:
        super().__init__(station_id, f"{command} does not exist in OCPP {version}")
        self.command = command
