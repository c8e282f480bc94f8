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
def _validator(version: OcppVersion, action: str, response: bool) -> tuple[Validator, dict[str, Any]] | None:
    """The compiled validator and the (bounded) schema it checks, for ``_integers_as_ints``."""
    path = _schema_path(version, action, response)
    if not path.is_file():
        return None
    schema = _bound_integers(json.loads(path.read_text(encoding="utf-8")))
    # Vendor keywords such as javaType are harmless to fastjsonschema; $id URNs are ignored for local refs.
    return fastjsonschema.compile(schema), schema


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
    """Check ``payload``; once valid, its integers written as floats are turned into ints, in place."""
    compiled = _validator(version, action, response)
    if compiled is None:
        raise SchemaViolation("action", f"no schema for {action} in OCPP {version.value}")
    validator, schema = compiled
    try:
        validator(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        rule = str(exc.rule)
        definition = exc.definition if isinstance(exc.definition, dict) else {}
        if rule in ("minimum", "maximum") and definition.get(rule) in (_INT64_MIN, _INT64_MAX):
            rule = "type"  # outside what an integer field can hold: a data type problem, not a bad value
        raise SchemaViolation(rule, _shorten(exc.message)) from None
    _integers_as_ints(schema, payload, schema.get("definitions", {}))


def _integers_as_ints(node: dict[str, Any], value: Any, definitions: dict[str, Any]) -> Any:
    """``value`` with every float at an ``integer`` of the schema turned into the int it equals.

    JSON Schema counts ``2.0`` as an integer, and the JSON parser reads an integer beyond 64 bits as a float
    (``-9223372036854775809`` is the float -2**63, inside the bounds): code past validation expects ints (Decimal
    exponents, sequence numbers, ids), and found floats there by fuzzing. Dicts and lists are changed in place.
    """
    reference = node.get("$ref")
    if reference is not None:
        node = definitions.get(reference.rsplit("/", 1)[-1], {})
    if isinstance(value, float):
        return int(value) if node.get("type") == "integer" else value
    if isinstance(value, dict):
        properties = node.get("properties")
        if properties:
            for key, item in value.items():
                child = properties.get(key)
                if child is not None and isinstance(item, float | dict | list):
                    value[key] = _integers_as_ints(child, item, definitions)
    elif isinstance(value, list):
        items = node.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                if isinstance(item, float | dict | list):
                    value[index] = _integers_as_ints(items, item, definitions)
    return value


def _shorten(message: str) -> str:
    # CALLERROR descriptions are limited to 255 characters in 2.0.1.
    return message if len(message) <= 250 else message[:247] + "..."
