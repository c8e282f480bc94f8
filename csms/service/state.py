"""Hot state kept in memory so answering a charger needs no database read.

One process owns the database and every write passes through the service layer, so these copies stay exact:
station registrations, id tokens (read through on first use) and the transactions in progress. The database
remains the record; this is what the hot path consults.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime

from csms.domain.metering import MeterSample, SampledValue
from csms.domain.stations import RegistrationStatus
from csms.domain.tokens import IdTokenRecord
from csms.domain.transactions import Transaction

__all__ = ["HotState"]

# Unknown tokens are cached too (a charger retries them); the negative cache is bounded so a flood of
# made-up tokens cannot grow memory without limit.
_MAX_UNKNOWN_TOKENS = 10_000


class HotState:
    def __init__(self) -> None:
        self.registrations: dict[str, RegistrationStatus] = {}
        self._tokens: dict[str, IdTokenRecord] = {}
        self._unknown_tokens: set[str] = set()
        self._active: dict[tuple[str, str], Transaction] = {}
        self._active_by_token: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)
        # 1.6 StartTransaction carries no id of the charger's own: a replay is recognised by what it says.
        self._active_by_start: dict[tuple[str, int, datetime, str | None], Transaction] = {}
        # Per (station, EVSE): the readings of the last stored message (a 1.6 charger resends a MeterValues whose
        # answer it lost, and 1.6 has no seqNo) and the transaction's Transaction.Begin readings (2.0.1 may
        # repeat them in the Ended event).
        self._recent_readings: dict[tuple[str, int], tuple[frozenset[_Reading], frozenset[_Reading]]] = {}

    # -- tokens ------------------------------------------------------------------------------------------

    def token(self, token: str) -> tuple[bool, IdTokenRecord | None]:
        """(known, record): known is False when the store must be asked."""
        if token in self._tokens:
            return True, self._tokens[token]
        return token in self._unknown_tokens, None

    def remember_token(self, token: str, record: IdTokenRecord | None) -> None:
        if record is not None:
            self._unknown_tokens.discard(token)
            self._tokens[token] = record
            return
        self._tokens.pop(token, None)
        if len(self._unknown_tokens) >= _MAX_UNKNOWN_TOKENS:
            self._unknown_tokens.clear()
        self._unknown_tokens.add(token)

    def forget_token(self, token: str) -> None:
        self._tokens.pop(token, None)
        self._unknown_tokens.discard(token)

    # -- transactions in progress ------------------------------------------------------------------------

    def active(self, station_id: str, charger_tx_id: str) -> Transaction | None:
        return self._active.get((station_id, charger_tx_id))

    def replayed_start(
        self, station_id: str, evse_id: int, started_at: datetime, id_token: str | None
    ) -> Transaction | None:
        return self._active_by_start.get((station_id, evse_id, started_at, id_token))

    def token_busy_elsewhere(self, token: str, station_id: str) -> bool:
        return any(key[0] != station_id for key in self._active_by_token.get(token, ()))

    def started(self, transaction: Transaction) -> None:
        key = (transaction.station_id, transaction.charger_tx_id)
        self._active[key] = transaction
        self._active_by_start[_start_key(transaction)] = transaction
        if transaction.id_token:
            self._active_by_token[transaction.id_token].add(key)

    def progressed(self, updated: Transaction) -> Transaction:
        """A transaction in progress with new sequence numbers (same start, token and id)."""
        self._active[(updated.station_id, updated.charger_tx_id)] = updated
        self._active_by_start[_start_key(updated)] = updated
        return updated

    def restarted(self, transaction: Transaction, moved: Transaction) -> Transaction:
        """``transaction`` with its start moved (``moved``): re-indexed under its new start."""
        self._active_by_start.pop(_start_key(transaction), None)
        self._active[(moved.station_id, moved.charger_tx_id)] = moved
        self._active_by_start[_start_key(moved)] = moved
        return moved

    def authorized(self, transaction: Transaction, token: str) -> Transaction:
        """A 2.0.1 transaction whose token came after it started: the token is now its own (ConcurrentTx sees it)."""
        key = (transaction.station_id, transaction.charger_tx_id)
        self._active_by_start.pop(_start_key(transaction), None)
        updated = replace(transaction, id_token=token)
        self._active[key] = updated
        self._active_by_start[_start_key(updated)] = updated
        self._active_by_token[token].add(key)
        return updated

    def ended(self, transaction: Transaction) -> None:
        key = (transaction.station_id, transaction.charger_tx_id)
        self._active.pop(key, None)
        self._active_by_start.pop(_start_key(transaction), None)
        if transaction.id_token:
            keys = self._active_by_token.get(transaction.id_token)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._active_by_token[transaction.id_token]

    # -- meter readings already stored -------------------------------------------------------------------

    def unseen(self, station_id: str, evse_id: int, samples: tuple[MeterSample, ...]) -> tuple[MeterSample, ...]:
        """``samples`` without the readings this EVSE's last message or transaction start already stored."""
        last, begin = self._recent_readings.get((station_id, evse_id), (frozenset(), frozenset()))
        if not last and not begin:
            return samples
        seen = last | begin
        kept: list[MeterSample] = []
        for sample in samples:
            values = tuple(v for v in sample.values if _reading(sample, v) not in seen)
            if len(values) == len(sample.values):
                kept.append(sample)
            elif values:
                kept.append(MeterSample(sample.timestamp, values))
        return tuple(kept)

    def readings_stored(self, station_id: str, evse_id: int, samples: tuple[MeterSample, ...]) -> None:
        keys = frozenset(_reading(sample, value) for sample in samples for value in sample.values)
        if not keys:
            return
        _, begin = self._recent_readings.get((station_id, evse_id), (frozenset(), frozenset()))
        begin |= {key for key in keys if key[4] == "Transaction.Begin"}
        self._recent_readings[(station_id, evse_id)] = (keys, begin)

    def forget_readings(self, station_id: str, evse_id: int) -> None:
        self._recent_readings.pop((station_id, evse_id), None)

    def all_active(self) -> list[Transaction]:
        return list(self._active.values())

    @property
    def active_count(self) -> int:
        return len(self._active)


def _start_key(transaction: Transaction) -> tuple[str, int, datetime, str | None]:
    return (transaction.station_id, transaction.evse_id, transaction.started_at, transaction.id_token)


# A reading is the same only if everything about it is: a different value at the same instant is kept.
_Reading = tuple[datetime, str, str | None, str | None, str | None, float | None, str | None]


def _reading(sample: MeterSample, value: SampledValue) -> _Reading:
    return (
        sample.timestamp,
        value.measurand,
        value.phase,
        value.location,
        value.context,
        value.value,
        value.raw_value,
    )
