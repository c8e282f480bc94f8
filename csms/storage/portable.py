"""SQL that SQLite and PostgreSQL spell differently, written once and compiled for the engine that runs it.

Statements are module constants built before any engine exists (the group-commit writer merges writes by statement
identity), so the dialect is chosen when a statement is compiled, not when it is built:

- ``INSERT ... ON CONFLICT`` is built with SQLite's :func:`insert` (its ``on_conflict_do_*`` clauses name their
  conflict target by columns, which is what PostgreSQL needs too) and rendered by PostgreSQL's compiler there;
- :func:`greatest` and :func:`least` are SQLite's two-argument ``max()``/``min()`` and PostgreSQL's
  ``GREATEST()``/``LEAST()``;
- :func:`julian_day` and :func:`epoch_seconds` turn a stored timestamp into a number (SQLite keeps timestamps as
  text, PostgreSQL as ``timestamptz``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer
from sqlalchemy.dialects.postgresql import dml as postgresql_dml
from sqlalchemy.dialects.sqlite import dml as sqlite_dml, insert as sqlite_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

__all__ = ["epoch_seconds", "greatest", "julian_day", "least", "upsert_insert"]

# The insert whose ON CONFLICT clauses compile on both backends.
upsert_insert = sqlite_insert


def _on_conflict_for_postgresql(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's clause objects carry the same parts as PostgreSQL's (inferred target columns and WHERE, the SET
    # list and its WHERE) except a named-constraint target, which SQLite has no syntax for.
    if not hasattr(element, "constraint_target"):
        element.constraint_target = None
    visit = (
        compiler.visit_on_conflict_do_update  # type: ignore[attr-defined]
        if isinstance(element, sqlite_dml.OnConflictDoUpdate)
        else compiler.visit_on_conflict_do_nothing  # type: ignore[attr-defined]
    )
    result: str = visit(element, **kw)
    return result


compiles(sqlite_dml.OnConflictDoUpdate, "postgresql")(_on_conflict_for_postgresql)
compiles(sqlite_dml.OnConflictDoNothing, "postgresql")(_on_conflict_for_postgresql)
assert postgresql_dml  # PostgreSQL's compiler (and its visit_on_conflict_* methods) is loaded with its dialect


class greatest(FunctionElement[Any]):
    """The larger of two values (both non-NULL: SQLite's ``max`` and PostgreSQL's ``GREATEST`` differ on NULL)."""

    name = "greatest"
    inherit_cache = True

    def __init__(self, first: ColumnElement[Any], second: ColumnElement[Any]) -> None:
        super().__init__(first, second)
        self.type = first.type


@compiles(greatest)
def _greatest_sqlite(element: greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"max({compiler.process(element.clauses, **kw)})"


@compiles(greatest, "postgresql")
def _greatest_postgresql(element: greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"GREATEST({compiler.process(element.clauses, **kw)})"


class least(FunctionElement[Any]):
    """The smaller of two values (both non-NULL, as for :class:`greatest`)."""

    name = "least"
    inherit_cache = True

    def __init__(self, first: ColumnElement[Any], second: ColumnElement[Any]) -> None:
        super().__init__(first, second)
        self.type = first.type


@compiles(least)
def _least_sqlite(element: least, compiler: SQLCompiler, **kw: Any) -> str:
    return f"min({compiler.process(element.clauses, **kw)})"


@compiles(least, "postgresql")
def _least_postgresql(element: least, compiler: SQLCompiler, **kw: Any) -> str:
    return f"LEAST({compiler.process(element.clauses, **kw)})"


class julian_day(FunctionElement[float]):
    """A timestamp as a fractional Julian day number (SQLite's ``julianday``)."""

    type = Float()
    name = "julian_day"
    inherit_cache = True


@compiles(julian_day)
def _julian_day_sqlite(element: julian_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"julianday({compiler.process(element.clauses, **kw)})"


@compiles(julian_day, "postgresql")
def _julian_day_postgresql(element: julian_day, compiler: SQLCompiler, **kw: Any) -> str:
    # 2440587.5 is the Julian day of the Unix epoch; double precision keeps the arithmetic in floats as on SQLite.
    seconds = f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS DOUBLE PRECISION)"
    return f"({seconds} / 86400.0 + 2440587.5)"


class epoch_seconds(FunctionElement[int]):
    """Whole seconds since the Unix epoch, fractions cut off (SQLite's ``strftime('%s', ...)``)."""

    type = Integer()
    name = "epoch_seconds"
    inherit_cache = True


@compiles(epoch_seconds)
def _epoch_seconds_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch_seconds, "postgresql")
def _epoch_seconds_postgresql(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"
