"""A throwaway PostgreSQL cluster for tests and kill runs: initdb into a temporary folder, one server on 127.0.0.1.

The server listens on a free loopback port and on a Unix socket in its own folder, trusts local connections and
keeps fsync on (the durability runs judge what a kill -9 leaves behind). PostgreSQL refuses to run as root, so
as root its programs run as the ``postgres`` user (or ``nobody``) through ``runuser``.

Each test or kill iteration gets a database of its own: ``CREATE DATABASE ... TEMPLATE`` of one migrated once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import create_engine

from benchmarks.resilience.server import free_port
from csms.storage.engine import upgrade

__all__ = ["PostgresCluster", "postgres_available"]

_USER = "csms"
_TEMPLATE = "csms_migrated"


def postgres_available() -> bool:
    """Whether this machine has the PostgreSQL server programs (``initdb``, ``pg_ctl``) on PATH."""
    return shutil.which("initdb") is not None and shutil.which("pg_ctl") is not None


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"]
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists to run PostgreSQL")


class PostgresCluster:
    """One PostgreSQL server in a temporary folder; :meth:`stop` stops it and deletes the folder."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="csms-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._names = itertools.count(1)
        self._template_ready = False
        self._started = False
        self._as = _run_as()
        if self._as:
            user = pwd.getpwnam(self._as[2])
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def start(self) -> None:
        log = self.root / "server.log"
        self._pg(["initdb", "--no-sync", "-D", str(self.data), "-U", _USER, "--auth=trust", "-E", "UTF8"])
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=on -c synchronous_commit=on"
            " -c max_connections=300 -c shared_buffers=32MB"
        )
        self._pg(["pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(log), "-o", options])
        self._started = True

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and delete its folder."""
        try:
            if self._started:
                self._pg(["pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data)])
                self._started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://{_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, migrated: bool = True) -> str:
        """A new, empty database (``migrated``: with the schema at the newest revision); its asyncpg URL."""
        if migrated and not self._template_ready:
            self._admin(f'CREATE DATABASE "{_TEMPLATE}"')
            engine = create_engine(self.url(_TEMPLATE, "psycopg"))
            try:
                with engine.begin() as connection:
                    upgrade(connection)
            finally:
                engine.dispose()
            self._template_ready = True
        name = f"csms_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{_TEMPLATE}"' if migrated else ""))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, ending any session still connected to it."""
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        import psycopg  # here, not at the top: the test suite imports this module with or without PostgreSQL

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={_USER} dbname=postgres", autocommit=True) as db:
            db.execute(sql.encode())

    def _pg(self, command: list[str]) -> None:
        result = subprocess.run([*self._as, *command], capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:2])} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
