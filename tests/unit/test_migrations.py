"""Alembic migrations build exactly the schema the code declares."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from csms.storage.schema import metadata

MIGRATIONS = Path(__file__).resolve().parents[2] / "csms" / "storage" / "migrations"


def test_migrations_match_tables(tmp_path: Path) -> None:
    """Upgrading an empty database to head leaves no difference from csms.storage.tables."""
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    engine.dispose()


def test_grid_migration_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    """0002 can be rolled back to 0001 (grid tables gone, stations kept) and applied again."""
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        command.downgrade(config, "0001")
        tables = set(inspect(connection).get_table_names())
        assert {"grid_nodes", "grid_limit_windows", "station_wiring"}.isdisjoint(tables) and "stations" in tables
        command.upgrade(config, "head")
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    engine.dispose()
