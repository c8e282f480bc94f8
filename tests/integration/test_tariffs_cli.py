"""`csms tariffs ...` against a live server: tariffs from options and files, rules, quotes, costs, errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from csms.cli import app
from csms.runtime.app import CentralSystem
from tests.http_api import CLI_ENV
from tests.money_helpers import charger, start_16, stop_16


async def cli(csms: CentralSystem, *args: str) -> Result:
    """Run the CLI in a thread: it calls the API synchronously, which the server on this loop must answer."""
    url = f"http://127.0.0.1:{csms.api_port}"
    return await asyncio.to_thread(CliRunner(env=CLI_ENV).invoke, app, [*args, "--api", url])


async def ok(csms: CentralSystem, *args: str) -> str:
    result = await cli(csms, *args)
    assert result.exit_code == 0, (args, result.output, result.stderr)
    return result.stdout


async def as_json(csms: CentralSystem, *args: str) -> Any:
    return json.loads(await ok(csms, *args, "--json"))


async def test_tariffs_rules_quote_and_cost_through_the_cli(csms: CentralSystem, tmp_path: Path) -> None:
    """A default tariff from options, a site tariff with tiers from TOML, rules, a quote and a session's cost."""
    await ok(csms, "grid", "nodes", "add", "site", "--max-current", "100")
    await ok(csms, "grid", "wiring", "set", "CP-1", "site")
    default = await as_json(csms, "tariffs", "set", "default", "--currency", "EUR", "--energy", "0.25")
    assert default["prices"]["energy_per_kwh"] == "0.25" and default["site_id"] is None
    shown = await ok(csms, "tariffs", "show", "site")
    assert "default" in shown and "0.25/kWh" in shown
    spec = tmp_path / "site.toml"
    spec.write_text(
        'currency = "EUR"\ntime_zone = "Europe/Berlin"\n'
        '[prices]\nenergy_per_kwh = "0.40"\nsession_fee = "1"\n'
        '[[tiers]]\nname = "peak"\nmultiplier = "1.5"\n[tiers.window]\nstart = "17:00"\nend = "20:00"\n'
    )
    site = await as_json(csms, "tariffs", "set", "site", "--file", str(spec), "--overstay", "0.2", "--grace", "5")
    assert site["tiers"][0]["window"]["weekdays"] == [1, 2, 3, 4, 5, 6, 7] and site["overstay"]["grace_minutes"] == 5
    assert "tier peak: 17:00-20:00" in await ok(csms, "tariffs", "show", "site")
    assert [t["id"] for t in await as_json(csms, "tariffs", "list")] == ["default", "site:site"]
    rules = await as_json(csms, "tariffs", "rules", "site", "--max-minutes", "120", "--at-limit", "overstay")
    assert (rules["max_charging_minutes"], rules["at_limit"], rules["warning_minutes"]) == (120, "overstay", 10)
    assert "at most 120 min" in await ok(csms, "tariffs", "rules", "site")
    quote = await as_json(
        csms,
        "tariffs",
        "quote",
        "site",
        "--start",
        "2026-11-23T10:00:00+00:00",
        "--minutes",
        "60",
        "--energy-kwh",
        "10",
    )
    assert (quote["tier"], quote["estimated_total"]) == ("base", "5.00")
    client = await charger(csms, "CP-1")
    transaction_id = await start_16(client, "2026-11-23T10:00:00Z", meter_wh=0)
    await stop_16(client, transaction_id, "2026-11-23T10:30:00Z", meter_wh=5000)
    assert csms.session_rules_loop is not None
    await csms.session_rules_loop.settled()
    table = await ok(csms, "tariffs", "cost", str(transaction_id))
    assert "3.00" in table and "final" in table  # 5 kWh x 0.40 + 1.00 fee
    assert (await as_json(csms, "tariffs", "cost", str(transaction_id)))["total"] == "3.00"
    await client.close()


async def test_cli_errors_are_readable(csms: CentralSystem, tmp_path: Path) -> None:
    """A bad currency, a missing file and an unknown session give a message and a non-zero exit."""
    bad = await cli(csms, "tariffs", "set", "default", "--currency", "ABC")
    assert bad.exit_code == 1 and "ISO 4217" in bad.stderr
    missing = await cli(csms, "tariffs", "set", "default", "--file", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    unknown = await cli(csms, "tariffs", "cost", "42")
    assert unknown.exit_code == 1 and "404" in unknown.stderr
