"""``python -m csms serve`` as a subprocess on a SQLite file (or a PostgreSQL database): start, SIGKILL, restart,
stop, observe."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from csms.runtime.fail_point import KILL_AT_VARIABLE

__all__ = ["ADMIN_TOKEN", "CsmsProcess", "ServerOptions", "free_port"]

ROOT = Path(__file__).resolve().parents[2]
# The API token of the servers these runs start (loopback only, throwaway databases).
ADMIN_TOKEN = "resilience-admin-token-0123456789"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class ServerOptions:
    ping_interval: float = 60.0
    ping_timeout: float = 60.0
    close_timeout: float = 10.0
    heartbeat_interval: int = 300
    synchronous: str = "normal"


class CsmsProcess:
    """One server configuration (ports, database, log) that can be started, killed and restarted.

    The database is the SQLite file ``csms.db`` in ``workdir``, or ``database_url`` (PostgreSQL) when given.
    """

    def __init__(
        self, workdir: Path, options: ServerOptions = ServerOptions(), database_url: str | None = None
    ) -> None:
        self.workdir = workdir
        self.options = options
        self.ocpp_port, self.api_port = free_port(), free_port()
        self.db_path = workdir / "csms.db"
        self.database_url = database_url or f"sqlite+aiosqlite:///{self.db_path}"
        # What the oracle reads: the SQLite file, or the PostgreSQL URL.
        self.database: Path | str = self.db_path if database_url is None else database_url
        self.log_path = workdir / "server.log"
        self.config = workdir / "csms.toml"
        self.config.write_text(
            "\n".join(
                [
                    "[ocpp]",
                    'host = "127.0.0.1"',
                    f"port = {self.ocpp_port}",
                    f"heartbeat_interval = {options.heartbeat_interval}",
                    f"ping_interval = {options.ping_interval:g}",
                    f"ping_timeout = {options.ping_timeout:g}",
                    f"close_timeout = {options.close_timeout:g}",
                    "[api]",
                    'host = "127.0.0.1"',
                    f"port = {self.api_port}",
                    f'admin_token = "{ADMIN_TOKEN}"',
                    "[database]",
                    f'url = "{self.database_url}"',
                    f'synchronous = "{options.synchronous}"',
                    "[stations]",
                    "auto_register = true",
                    "allow_unknown_tokens = true",
                    "[log]",
                    'level = "warning"',
                    'format = "json"',
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0, kill_at: str | None = None) -> float:
        """Start the server (on the same database and ports as before); seconds until /healthz answers.

        ``kill_at`` arms the server's kill -9 test hook (``CSMS_KILL_AT``, see csms/runtime/fail_point.py), e.g.
        ``"after_commit:3"``: the process SIGKILLs itself the third time a transaction message gets there.
        """
        assert not self.alive()
        began = time.monotonic()
        env = dict(os.environ)
        env.pop("PYTHONASYNCIODEBUG", None)  # never measure asyncio's debug mode
        env.pop(KILL_AT_VARIABLE, None)
        if kill_at is not None:
            env[KILL_AT_VARIABLE] = kill_at
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "csms", "serve", "--config", str(self.config)],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.starts += 1
        while time.monotonic() - began < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"csms exited during start-up:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                if self.health(timeout=1.0) is not None:
                    return time.monotonic() - began
            time.sleep(0.05)
        raise RuntimeError(f"csms not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def health(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """The /healthz body, or None when the API does not answer."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{self.api_port}/healthz", timeout=timeout) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def metrics(self, timeout: float = 5.0) -> dict[str, float]:
        """Samples of /metrics by name (``csms_stations_connected``, ...), labelled ones with their labels
        (``csms_password_checks_total{how="argon2"}``)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.api_port}/metrics", timeout=timeout) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def resources(self) -> dict[str, int]:
        """RSS and open file descriptors of the server process."""
        process = psutil.Process(self.pid)
        return {"rss_bytes": int(process.memory_info().rss), "open_fds": process.num_fds()}

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing is flushed that was not already in the OS."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close_log()

    def wait_dead(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the process to end by itself (the armed hook); its exit code or None
        if it is still running. Once it ended the log is closed, as after :meth:`kill`."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._close_log()
        return code

    def fail_point_markers(self) -> list[dict[str, Any]]:
        """The lines the kill -9 test hook wrote just before each SIGKILL, oldest first."""
        found: list[dict[str, Any]] = []
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith('{"fail_point"'):
                    with contextlib.suppress(ValueError):
                        found.append(json.loads(line))
        return found

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT (clean shutdown); SIGKILL only if it does not finish in ``timeout``. The exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._close_log()
        return self.proc.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def error_lines(self) -> list[str]:
        """Log lines at level error or above, and tracebacks (the server logs JSON)."""
        found: list[str] = []
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                try:
                    level = str(json.loads(line).get("level", ""))
                except ValueError:
                    level = ""
                # structlog lines are JSON; library loggers (websockets, uvicorn) print "LEVEL name: message".
                if level in ("error", "critical") or line.startswith(("ERROR ", "CRITICAL ")) or "Traceback" in line:
                    found.append(line[:500])
        return found
