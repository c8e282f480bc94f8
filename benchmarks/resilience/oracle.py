"""What the database holds against what the chargers were told: the kill -9 run's judge.

The database is read directly with sqlite3 (or psycopg for PostgreSQL; the server is dead or stopped when it is
read), so the check does not depend on the server's own reading code.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from benchmarks.resilience.station import DurableStation, Message

__all__ = ["DbView", "FinalCheck", "check_final", "read_db"]


def _time(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class TxRow:
    id: int
    station_id: str
    charger_tx_id: str
    state: str
    started_at: datetime
    stopped_at: datetime | None
    meter_start: float | None
    meter_stop: float | None


@dataclass
class DbView:
    transactions: dict[str, list[TxRow]] = field(default_factory=lambda: defaultdict(list))
    # (station, timestamp, value) -> the transaction id of every stored row with that reading
    readings: dict[tuple[str, datetime, float], list[int | None]] = field(default_factory=lambda: defaultdict(list))

    def starts(self, station: str, at: datetime) -> list[TxRow]:
        return [row for row in self.transactions[station] if row.started_at == at]

    def by_charger_id(self, station: str, charger_tx_id: str) -> list[TxRow]:
        return [row for row in self.transactions[station] if row.charger_tx_id == charger_tx_id]

    def stops(self, station: str, at: datetime) -> list[TxRow]:
        return [row for row in self.transactions[station] if row.stopped_at == at]

    def has_effect(self, station: DurableStation, message: Message) -> bool:
        """Whether what ``message`` changes is in the database."""
        sid = station.identity
        if message.kind == "start":
            if station.version == "2.0.1":
                return bool(self.by_charger_id(sid, message.tx.charger_tx_id))
            return bool(self.starts(sid, message.at))
        if message.kind in ("meter", "idle"):
            assert message.reading is not None
            return bool(self.readings.get((sid, message.at, float(message.reading))))
        return bool(self.stops(sid, message.at))


_TRANSACTIONS = (
    "SELECT id, station_id, charger_tx_id, state, started_at, stopped_at, meter_start_wh, meter_stop_wh "
    "FROM transactions"
)
_READINGS = "SELECT station_id, timestamp, value, transaction_id FROM meter_values WHERE value IS NOT NULL"


def read_db(database: Path | str) -> DbView:
    """What the database holds: a SQLite file's path, or a ``postgresql+...://`` URL."""
    if isinstance(database, str):
        import psycopg  # only the PostgreSQL runs need the driver

        with psycopg.connect(make_url(database).set(drivername="postgresql").render_as_string(False)) as pg:
            return _view(pg.execute(_TRANSACTIONS).fetchall(), pg.execute(_READINGS).fetchall())
    with sqlite3.connect(database, timeout=30) as db:
        view = _view(db.execute(_TRANSACTIONS).fetchall(), db.execute(_READINGS).fetchall())
    db.close()
    return view


def _view(transactions: list[Any], readings: list[Any]) -> DbView:
    view = DbView()
    for tid, station, charger_tx_id, state, started, stopped, meter_start, meter_stop in transactions:
        started_at = _time(started)
        assert started_at is not None
        row = TxRow(tid, station, charger_tx_id, state, started_at, _time(stopped), meter_start, meter_stop)
        view.transactions[station].append(row)
    for station, at, value, tid in readings:
        timestamp = _time(at)
        assert timestamp is not None
        view.readings[(station, timestamp, float(value))].append(tid)
    return view


@dataclass
class FinalCheck:
    transactions: int = 0
    readings: int = 0
    lost_transactions: int = 0
    duplicated_transactions: int = 0
    wrong_transaction_ids: int = 0  # 1.6: the id a charger was told is not the row that holds its start
    stops_missing: int = 0
    lost_readings: int = 0
    duplicated_readings: int = 0
    idle_readings: int = 0  # readings outside a transaction that were answered
    lost_idle_readings: int = 0
    duplicated_idle_readings: int = 0
    phantom_transactions: int = 0  # rows no charger started
    unanswered_messages: int = 0  # still queued when the run's time bound hit (reported, judged nowhere)
    undelivered_transactions: int = 0
    call_errors: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def violations(self) -> int:
        return (
            self.lost_transactions
            + self.duplicated_transactions
            + self.wrong_transaction_ids
            + self.stops_missing
            + self.lost_readings
            + self.duplicated_readings
            + self.lost_idle_readings
            + self.duplicated_idle_readings
            + self.phantom_transactions
            + self.call_errors
        )

    def note(self, text: str) -> None:
        if len(self.details) < 20:
            self.details.append(text)


def check_final(view: DbView, stations: list[DurableStation]) -> FinalCheck:
    """Every transaction a charger was told about exactly once, with its timestamps and ids; every answered reading
    (in a transaction or outside one) stored once. Messages still queued when the run ended were promised nothing
    and are only counted."""
    check = FinalCheck()
    for station in stations:
        sid = station.identity
        matched: set[int] = set()
        unanswered = [m for m in station.messages if m.result is None]
        check.unanswered_messages += len(unanswered)
        check.call_errors += len(station.call_errors)
        for action, reply in station.call_errors:
            check.note(f"{sid}: {action} got {reply}")
        answered = {(id(m.tx), m.kind, m.at) for m in station.messages if m.result is not None}
        for tx in station.transactions:
            if (id(tx), "start", tx.started_at) not in answered:
                # Never answered (the run's time bound came first): nothing was promised to the charger.
                check.undelivered_transactions += 1
                continue
            check.transactions += 1
            if station.version == "2.0.1":
                rows = [r for r in view.by_charger_id(sid, tx.charger_tx_id) if r.started_at == tx.started_at]
            else:
                rows = view.starts(sid, tx.started_at)
            if not rows:
                check.lost_transactions += 1
                check.note(f"{sid}: transaction {tx.index} started {tx.started_at} is not stored")
                continue
            if len(rows) > 1:
                check.duplicated_transactions += len(rows) - 1
                check.note(f"{sid}: transaction {tx.index} stored {len(rows)} times: {[r.id for r in rows]}")
            row = rows[0]
            matched.update(r.id for r in rows)
            if station.version == "1.6" and tx.start_answers and set(tx.start_answers) != {row.id}:
                check.wrong_transaction_ids += 1
                check.note(f"{sid}: told transactionId {tx.start_answers}, stored as {row.id}")
            stop_answered = tx.stopped_at is not None and (id(tx), "stop", tx.stopped_at) in answered
            if stop_answered and (row.stopped_at != tx.stopped_at or row.state != "ended"):
                check.stops_missing += 1
                check.note(f"{sid}: transaction {row.id} stop {tx.stopped_at} stored as {row.stopped_at} {row.state}")
            elif stop_answered and station.version == "1.6" and row.meter_stop != float(tx.meter_stop or 0):
                check.stops_missing += 1
                check.note(f"{sid}: transaction {row.id} meterStop {tx.meter_stop} stored as {row.meter_stop}")
            for at, energy in tx.readings:
                if (id(tx), "meter", at) not in answered:
                    continue
                check.readings += 1
                owners = Counter(view.readings.get((sid, at, float(energy)), []))
                if owners[row.id] == 0:
                    check.lost_readings += 1
                    check.note(f"{sid}: reading {energy} Wh at {at} of transaction {row.id} is not stored")
                elif owners[row.id] > 1:
                    check.duplicated_readings += owners[row.id] - 1
                    check.note(f"{sid}: reading {energy} Wh at {at} stored {owners[row.id]} times")
        for message in station.messages:
            if message.kind != "idle" or message.result is None:
                continue
            assert message.reading is not None
            check.idle_readings += 1
            stored = view.readings.get((sid, message.at, float(message.reading)), []).count(None)
            if stored == 0:
                check.lost_idle_readings += 1
                check.note(f"{sid}: reading {message.reading} Wh at {message.at} outside a transaction is not stored")
            elif stored > 1:
                check.duplicated_idle_readings += stored - 1
                check.note(
                    f"{sid}: reading {message.reading} Wh at {message.at} outside a transaction stored {stored}x"
                )
        phantoms = [row for row in view.transactions[sid] if row.id not in matched]
        check.phantom_transactions += len(phantoms)
        for row in phantoms:
            check.note(f"{sid}: stored transaction {row.id} started {row.started_at} was never started by it")
    return check
