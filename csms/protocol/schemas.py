"""Compiled validators for the official OCPP JSON schemas that ship inside the ``ocpp`` package.

The library validates with ``jsonschema.Draft4Validator`` in a thread pool, which costs more than the message it
checks (research/ocpp-protocol.md §3). ``fastjsonschema`` compiles the same schema files to Python code, about
25x faster, and it also checks ``format: date-time`` so a timestamp without a time zone is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import ocpp

from csms.protocol.versions import OcppVersion

__all__ = ["SchemaViolation", "validate_request", "validate_response"]

_SCHEMA_ROOT = Path(ocpp.__file__).parent

Validator = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class SchemaViolation(Exception):
    """A payload broke its schema; ``rule`` is the JSON-schema keyword that failed (type, required, ...)."""

    rule: str
    message: str

    def __str__(self) -> str:
        return self.message


def _schema_path(version: OcppVersion, action: str, response: bool) -> Path:
    if version is OcppVersion.V16:
        name = f"{action}Response.json" if response else f"{action}.json"
        return _SCHEMA_ROOT / "v16" / "schemas" / name
    name = f"{action}Response.json" if response else f"{action}Request.json"
    return _SCHEMA_ROOT / "v201" / "schemas" / name


@cache
def _validator(version: OcppVersion, action: str, response: bool) -> Validator | None:
    path = _schema_path(version, action, response)
    if not path.is_file():
        return None
    schema = _bound_integers(json.loads(path.read_text(encoding="utf-8")))
    # Vendor keywords such as javaType are harmless to fastjsonschema; $id URNs are ignored for local refs.
    return fastjsonschema.compile(schema)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _bound_integers(node: Any) -> Any:
    """Give every unbounded ``integer`` the signed 64-bit range.

    The official schemas leave most integers unbounded, so ``2**64 - 1`` or ``1e300`` pass as a connectorId
    and only fail when the database cannot store them. Bounds make them a schema violation at the edge.
    """
    if isinstance(node, dict):
        bounded = {key: _bound_integers(value) for key, value in node.items()}
        if bounded.get("type") == "integer":
            bounded.setdefault("minimum", _INT64_MIN)
            bounded.setdefault("maximum", _INT64_MAX)
        return bounded
    if isinstance(node, list):
        return [_bound_integers(item) for item in node]
    return node


def validate_request(version: OcppVersion, action: str, payload: Any) -> None:
    _validate(version, action, False, payload)


def validate_response(version: OcppVersion, action: str, payload: Any) -> None:
    _validate(version, action, True, payload)


def _validate(version: OcppVersion, action: str, response: bool, payload: Any) -> None:
    validator = _validator(version, action, response)
    if validator is None:
        raise SchemaViolation("action", f"no schema for {action} in OCPP {version.value}")
    try:
        validator(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        rule = str(exc.rule)
        definition = exc.definition if isinstance(exc.definition, dict) else {}
        if rule in ("minimum", "maximum") and definition.get(rule) in (_INT64_MIN, _INT64_MAX):
            rule = "type"  # outside what an integer field can hold: a data type problem, not a bad value
        raise SchemaViolation(rule, _shorten(exc.message)) from None


def _shorten(message: str) -> str:
    # CALLERROR descriptions are limited to 255 characters in 2.0.1.
    return message if len(message) <= 250 else message[:247] + "..."
