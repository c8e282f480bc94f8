"""Database engine creation and schema migration at start."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine as sa_create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["checkpoint", "create_engine", "create_writer_engine", "is_sqlite", "migrate", "upgrade"]

# The writer thread uses a synchronous driver for the same database as the async engine (reads and migrations).
_SYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite+pysqlite", "postgresql+asyncpg": "postgresql+psycopg"}

_MIGRATIONS = Path(__file__).parent / "migrations"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, synchronous: str = "normal") -> AsyncEngine:
    """An async engine for reads and migrations; for SQLite the file's folder is created and WAL switched on."""
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, pool_pre_ping=False)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", functools.partial(_sqlite_pragmas, synchronous, True))
    return engine


def create_writer_engine(url: str, synchronous: str = "normal", checkpoints: bool = True) -> Engine:
    """A synchronous engine with one connection, for the group-commit writer.

    With ``checkpoints=False`` the connection never checkpoints the WAL itself (someone else must, see
    :func:`checkpoint`), so a commit never waits for the database file to be written.
    """
    parsed = make_url(url)
    sync = parsed.set(drivername=_SYNC_DRIVERS.get(parsed.drivername, parsed.drivername))
    engine = sa_create_engine(sync, pool_size=1, max_overflow=0)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, synchronous, checkpoints))
    return engine


def checkpoint(engine: Engine) -> None:
    """Copy committed WAL pages into the database file without blocking the writer (SQLite PASSIVE mode)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _sqlite_pragmas(synchronous: str, checkpoints: bool, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the single writer. synchronous=NORMAL: a commit is in the operating system
    # before we reply, so it survives a crash or kill of this process (not a power cut: use FULL for that).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    if not checkpoints:
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection) -> None:
    """Bring the schema to the newest revision (Alembic ``upgrade head``) on a synchronous connection."""
    command.upgrade(_alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (Alembic ``upgrade head``)."""
    async with engine.begin() as conn:
        await conn.run_sync(upgrade)
