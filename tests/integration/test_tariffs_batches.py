"""Session costs are computed in batches and exactly once per finished transaction, across restarts and crashes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from csms.runtime.app import CentralSystem
from csms.service.events import Subscription
from csms.storage.tables_tariffs import tariff_sessions
from tests.conftest import make_settings
from tests.http_api import account_with_key
from tests.money_helpers import (
    Clock,
    api,
    charger,
    make_site,
    next_event,
    ok,
    settled,
    start_16,
    status_16,
    stop_16,
)

SETTINGS = {"tariffs": {"tick_seconds": 0.05}}


async def _costs(system: CentralSystem) -> dict[int, tuple[str | None, object]]:
    """transaction id -> (stored total, costed_at) of every row of tariff_sessions."""
    async with system.engine.connect() as conn:
        rows = (await conn.execute(select(tariff_sessions))).all()
    return {row.transaction_id: (None if row.total is None else str(row.total), row.costed_at) for row in rows}


async def _costed(subscription: Subscription) -> list[int]:
    """Transaction ids of the session.cost events published so far."""
    ids: list[int] = []
    while (event := await subscription.next(timeout=0.2)) is not None:
        if event.kind == "session.cost":
            ids.append(event.data["transaction_id"])
    return ids


async def _session(system: CentralSystem, name: str, clock: Clock, minutes: float, end: bool) -> int:
    """One 1.6 session of 10 kWh over ``minutes`` (ended or left running), on its own station."""
    client = await charger(system, name)
    transaction_id = await start_16(client, clock.at(0), meter_wh=0)
    await status_16(client, "Charging", clock.at(0))
    if end:
        await stop_16(client, transaction_id, clock.at(minutes), meter_wh=10_000)
    await client.close()
    return transaction_id


def _total(minutes: float) -> str:
    """10 kWh x 0.30 + minutes/60 h x 1.20 + 0.50 fee (money_helpers.TARIFF), rounded to cents."""
    return f"{3.00 + round(minutes / 60 * 1.20, 2) + 0.50:.2f}"


async def test_many_finished_sessions_are_costed_in_one_batch(tmp_path: Path, clock: Clock) -> None:
    """Reports that pile up while the loop is busy are read, costed and committed as one batch, each cost right."""
    system = CentralSystem(make_settings(tmp_path, **SETTINGS), clock=clock)
    await system.start()
    try:
        names = [f"CP-{i}" for i in range(8)]
        await make_site(system, names)
        assert system.session_rules_loop is not None and system.session_rules is not None
        await settled(system)
        await system.session_rules_loop.stop()  # the loop is "busy": every report waits in its inbox
        events = system.events.subscribe()
        minutes = {name: 30.0 + 7 * i for i, name in enumerate(names)}
        ids = {name: await _session(system, name, clock, minutes[name], end=True) for name in names}
        before = system.session_rules.batches
        system.session_rules_loop.start()
        await settled(system)
        assert system.session_rules.batches == before + 1  # 8 starts, 8 statuses, 8 ends: one read, one commit
        stored = await _costs(system)
        assert {name: stored[ids[name]][0] for name in names} == {name: _total(minutes[name]) for name in names}
        assert sorted(await _costed(events)) == sorted(ids.values())
    finally:
        await system.stop()


async def test_a_crash_before_a_batch_commits_costs_each_session_once_after_restart(
    tmp_path: Path, clock: Clock
) -> None:
    """A process that dies with reports unprocessed (an open session ended; a session whose start was never seen
    here, ended or still running): after the restart each finished one is costed once; a second restart recosts
    nothing."""
    settings = make_settings(tmp_path, **SETTINGS)
    system = CentralSystem(settings, clock=clock)
    await system.start()
    try:
        await make_site(system, ["CP-A", "CP-B", "CP-C"])
        assert system.session_rules_loop is not None
        # A starts and the loop commits its row; then the loop stops as if the process were about to die.
        client_a = await charger(system, "CP-A")
        a = await start_16(client_a, clock.at(0), meter_wh=0)
        await status_16(client_a, "Charging", clock.at(0))
        await settled(system)
        await system.session_rules_loop.stop()
        await stop_16(client_a, a, clock.at(40), meter_wh=10_000)
        await client_a.close()
        b = await _session(system, "CP-B", clock, 50, end=True)  # start and end never seen by the loop
        c = await _session(system, "CP-C", clock, 0, end=False)  # start never seen, still running
        stored = await _costs(system)
        assert stored[a] == (None, None) and b not in stored and c not in stored
    finally:
        await system.stop()  # the reports in the loop's inbox die with the process

    system = CentralSystem(settings, clock=clock)
    await system.start()
    try:
        await settled(system)
        stored = await _costs(system)
        assert (stored[a][0], stored[b][0]) == (_total(40), _total(50))
        assert stored[c] == (None, None)  # followed again, in progress
        async with api(system) as http:
            running = await ok(await http.get(f"/transactions/{c}/cost"))
        assert running["final"] is False and running["tier"] == "base"
        first_costs = {a: stored[a], b: stored[b]}
    finally:
        await system.stop()

    system = CentralSystem(settings, clock=clock)
    await system.start()
    try:
        events = system.events.subscribe()
        await settled(system)
        assert {a: (await _costs(system))[a], b: (await _costs(system))[b]} == first_costs  # not costed again
        client_c = await charger(system, "CP-C")
        await stop_16(client_c, c, clock.at(20), meter_wh=10_000)
        await client_c.close()
        await settled(system)
        assert (await _costs(system))[c][0] == _total(20)
        assert await _costed(events) == [c]  # only the session that ended now: nothing costed twice
    finally:
        await system.stop()


async def test_sessions_without_tariff_or_rules_are_seen_but_not_costed(tmp_path: Path, clock: Clock) -> None:
    """Without a tariff or a time limit a session gets a closed row (its start was seen), no cost, and no cost API."""
    system = CentralSystem(make_settings(tmp_path, **SETTINGS), clock=clock)
    await system.start()
    try:
        transaction_id = await _session(system, "CP-X", clock, 30, end=True)
        await settled(system)
        total, costed_at = (await _costs(system))[transaction_id]
        assert total is None and costed_at is not None
        async with api(system) as http:
            response = await http.get(f"/transactions/{transaction_id}/cost")
        assert response.status_code == 404
        assert system.tariffs is not None and await system.tariffs.cost_summary(transaction_id) is None
    finally:
        await system.stop()


async def test_a_token_presented_after_the_start_makes_its_owner_the_driver_of_the_cost(
    tmp_path: Path, clock: Clock
) -> None:
    """2.0.1: Started without idToken, then Updated with the driver's token: the cost goes to the token's owner."""
    system = CentralSystem(make_settings(tmp_path, **SETTINGS), clock=clock)
    await system.start()
    try:
        await make_site(system, ["CP-2"])
        driver = await account_with_key(system.api_port, "driver-9")
        async with api(system) as http:
            await ok(await http.put("/id-tokens/LATE-1", json={"owner": "driver-9"}))
        events = system.events.subscribe()
        client = await charger(system, "CP-2", "ocpp2.0.1")

        def event(kind: str, seq: int, minutes: float, trigger: str, **extra: Any) -> dict[str, Any]:
            info = {"transactionId": "T-1", "chargingState": "Charging"}
            body = {"eventType": kind, "timestamp": clock.at(minutes), "triggerReason": trigger, "seqNo": seq}
            return body | {"transactionInfo": info, "evse": {"id": 1, "connectorId": 1}, **extra}

        def energy(wh: int) -> list[dict[str, Any]]:
            sample = {"value": wh, "measurand": "Energy.Active.Import.Register"}
            return [{"timestamp": clock.now.isoformat().replace("+00:00", "Z"), "sampledValue": [sample]}]

        started = event("Started", 0, 0, "CablePluggedIn")
        await client.result("TransactionEvent", started | {"meterValue": energy(0)})
        token = {"idToken": "LATE-1", "type": "ISO14443"}
        await client.result("TransactionEvent", event("Updated", 1, 1, "Authorized", idToken=token))
        ended = event("Ended", 2, 60, "StopAuthorized")
        await client.result("TransactionEvent", ended | {"meterValue": energy(10_000)})
        cost = await next_event(events, "session.cost")
        assert cost.account_id == "driver-9"
        [transaction_id] = [cost.data["transaction_id"]]
        assert system.tariffs is not None
        summary = await system.tariffs.cost_summary(transaction_id)
        assert summary is not None and summary["account_id"] == "driver-9" and summary["total"] == _total(60)
        async with api(system) as http:  # the driver sees the cost of the session of its token
            seen = await ok(await http.get(f"/transactions/{transaction_id}/cost", headers=driver))
        assert seen["total"] == _total(60)
        await client.close()
    finally:
        await system.stop()
