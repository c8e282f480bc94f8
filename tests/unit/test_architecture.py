"""The import rules of docs/architecture.md, checked on the source tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CORE = {"asyncio", "websockets", "ocpp", "sqlite3", "sqlalchemy", "fastapi", "aiosqlite", "uvicorn"}


def imported_modules(package: Path) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(ROOT)), alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add((str(path.relative_to(ROOT)), node.module))
    return found


@pytest.mark.parametrize("package", ["csms/domain", "csms/scheduler"])
def test_pure_core_does_no_io(package: str) -> None:
    """domain and scheduler import no asyncio, network, database or web framework."""
    offenders = [(f, m) for f, m in imported_modules(ROOT / package) if m.split(".")[0] in FORBIDDEN_IN_CORE]
    assert offenders == []


def test_only_protocol_imports_ocpp() -> None:
    """The ocpp library stays behind csms/protocol."""
    offenders = [
        (f, m)
        for f, m in imported_modules(ROOT / "csms")
        if m.split(".")[0] == "ocpp" and not f.startswith("csms/protocol/")
    ]
    assert offenders == []


def test_simulator_never_imports_csms() -> None:
    """The simulator is a black box to the server: it shares no code with it."""
    offenders = [(f, m) for f, m in imported_modules(ROOT / "simulator") if m.split(".")[0] == "csms"]
    assert offenders == []


def test_storage_imports_only_domain() -> None:
    """storage knows domain values, not services, protocol or runtime."""
    allowed = {"csms.domain", "csms.storage", "csms.errors"}
    offenders = [
        (f, m)
        for f, m in imported_modules(ROOT / "csms/storage")
        if m.startswith("csms") and not any(m == a or m.startswith(a + ".") for a in allowed)
    ]
    assert offenders == []
