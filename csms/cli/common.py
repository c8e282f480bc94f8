"""What every ``csms`` operator command shares: API options, requests with helpful errors, output helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

__all__ = [
    "DEFAULT_API",
    "ApiUrl",
    "AsJson",
    "OptionalNumber",
    "Phases",
    "Token",
    "all_items",
    "amps",
    "digits",
    "err",
    "number",
    "phase_names",
    "print_json",
    "request",
    "show_items",
]

err = Console(stderr=True)
DEFAULT_API = "http://127.0.0.1:8080"

ApiUrl = Annotated[str, typer.Option(envvar="CSMS_API_URL", help="Base URL of the CSMS HTTP API.")]
Token = Annotated[str | None, typer.Option(envvar="CSMS_API_TOKEN", help="Bearer token for the API.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def request(method: str, url: str, token: str | None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, url, headers=headers, timeout=60, **kwargs)
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach the CSMS API at {url}:[/red] {exc}")
        raise typer.Exit(1) from None
    body = response.json() if response.content else None
    if response.status_code >= 400:
        detail = body.get("detail") if isinstance(body, dict) else response.text
        err.print(f"[red]{response.status_code}:[/red] {detail}")
        raise typer.Exit(1)
    return body


Phases = Annotated[str | None, typer.Option(help="grid phases the node carries, e.g. 123 or 1")]
OptionalNumber = Annotated[str | None, typer.Option(help="a number, or 'none' to clear")]


def print_json(body: Any) -> None:
    print(json.dumps(body, indent=2, default=str))


def show_items(
    items: list[Any], as_json: bool, columns: Sequence[str], row: Callable[[dict[str, Any]], Sequence[str]]
) -> None:
    """``items`` as JSON for scripts, or as a table with ``columns`` and one ``row`` per item."""
    if as_json:
        print_json(items)
        return
    table = Table(*columns)
    for item in items:
        table.add_row(*row(item))
    Console().print(table)


def all_items(url: str, token: str | None, **params: Any) -> list[Any]:
    """Every item of a paged list endpoint."""
    items: list[Any] = []
    while True:
        body = request("GET", url, token, params={**params, "limit": 1000, "offset": len(items)})
        items += body["items"]
        if len(body["items"]) < 1000:
            return items


def number(text: str | None, option: str) -> float | None:
    if text is None or text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        err.print(f"[red]{option} must be a number or 'none', not {text!r}[/red]")
        raise typer.Exit(2) from None


def digits(text: str, option: str) -> list[int]:
    """ "123", "1,2,3" or "1-5" as a list of integers."""
    text = text.replace(" ", "")
    try:
        if "-" in text:
            first, last = text.split("-")
            return list(range(int(first), int(last) + 1))
        return [int(part) for part in (text.split(",") if "," in text else text)]
    except ValueError:
        err.print(f"[red]{option} must look like 123, 1,2,3 or 1-5, not {text!r}[/red]")
        raise typer.Exit(2) from None


def amps(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def phase_names(phases: list[int]) -> str:
    return "/".join(f"L{p}" for p in phases)
