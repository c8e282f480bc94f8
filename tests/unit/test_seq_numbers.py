"""The 2.0.1 seqNo bookkeeping of one transaction (csms.domain.seq_numbers): runs, gaps, replays, the cap."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from csms.domain.seq_numbers import MAX_RUNS, SeqNumbers, describe_runs, seen_seq_nos, with_seq_no
from csms.domain.stations import StationId
from csms.domain.transactions import Transaction, TransactionState


def numbers(*seen: int) -> SeqNumbers:
    result = SeqNumbers()
    for number in seen:
        result = result.added(number)
    return result


@pytest.mark.parametrize(
    ("seen", "encoded", "missing"),
    [
        ((), None, ()),
        ((0, 1, 2), "0-2", ()),
        ((2, 0, 1), "0-2", ()),  # out of order, the middle joins both neighbours
        ((0, 1, 3, 6), "0-1,3,6", ((2, 2), (4, 5))),
        ((5, 4), "4-5", ((0, 3),)),
        ((0, 1, 2, 0, 1), "0-2", ()),  # a restart at 0 repeats numbers: no gap
        ((-3, -2, 0), "-3--2,0", ()),  # the schema allows negative numbers: they must round-trip
    ],
)
def test_runs_and_gaps(seen: tuple[int, ...], encoded: str | None, missing: tuple[tuple[int, int], ...]) -> None:
    result = numbers(*seen)
    assert result.encode() == encoded
    assert result.missing(0) == missing
    assert SeqNumbers.decode(encoded) == result
    assert all(n in result for n in seen) and -1 not in result


def test_run_count_is_capped_and_the_unrecorded_number_stays_missing() -> None:
    every_other = numbers(*range(0, 2 * MAX_RUNS, 2))
    assert len(every_other.runs) == MAX_RUNS
    assert every_other.added(10_000) == every_other  # would start a run of its own
    assert len(every_other.added(1).runs) == MAX_RUNS - 1  # joining runs is always recorded
    assert describe_runs(every_other.missing(0)) is not None


def transaction(**fields: object) -> Transaction:
    base = Transaction(
        1, StationId("S"), 1, 1, "TX", None, datetime(2026, 1, 1, tzinfo=UTC), None, TransactionState.ACTIVE
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_gaps_count_from_the_started_seq_no_and_only_once_ended() -> None:
    started_at_17 = with_seq_no(transaction(), 17, started=True)  # a charger counting across transactions
    running = with_seq_no(with_seq_no(started_at_17, 18), 21)
    assert (running.seq_nos, running.last_seq_no, running.seq_no_gaps) == ("17-18,21", 21, None)
    ended = with_seq_no(replace(running, state=TransactionState.ENDED), 22)
    assert ended.seq_no_gaps == "19-20"
    assert with_seq_no(with_seq_no(ended, 19), 20).seq_no_gaps is None
    no_started = with_seq_no(replace(transaction(), state=TransactionState.ENDED), 3)
    assert no_started.seq_no_gaps == "0-2"


def test_a_row_from_before_tracking_is_complete_up_to_its_last_seq_no() -> None:
    legacy = transaction(last_seq_no=4)
    assert seen_seq_nos(legacy).encode() == "0-4"
    assert with_seq_no(replace(legacy, state=TransactionState.ENDED), 5).seq_no_gaps is None


def test_gaps_below_zero_count_only_from_a_negative_started_seq_no() -> None:
    ended = with_seq_no(replace(with_seq_no(transaction(), -3, started=True), state=TransactionState.ENDED), 0)
    assert (ended.seq_nos, ended.seq_no_gaps) == ("-3,0", "-2--1")
