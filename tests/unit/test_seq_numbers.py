"""The 2.0.1 seqNo bookkeeping of one transaction (csms.domain.seq_numbers): runs, gaps, replays, numberings that
restart at 0, the caps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.seq_numbers import (
    MAX_NUMBERINGS,
    MAX_RUNS,
    SeqNumbers,
    describe_runs,
    numberings,
    with_event,
)
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


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def transaction(**fields: object) -> Transaction:
    base = Transaction(1, StationId("S"), 1, 1, "TX", None, T0, None, TransactionState.ACTIVE)
    return replace(base, **fields)  # type: ignore[arg-type]


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def received(tx: Transaction, *events: tuple[int, int], started: bool = False) -> tuple[Transaction, list[bool]]:
    """``tx`` after events (seqNo, minutes after T0) in arrival order, and which of them were new."""
    fresh = []
    for number, minutes in events:
        tx, new = with_event(tx, number, at(minutes), started)
        fresh.append(new)
    return tx, fresh


def ended(tx: Transaction) -> Transaction:
    return replace(tx, state=TransactionState.ENDED)


def test_gaps_count_from_the_started_seq_no_and_only_once_ended() -> None:
    started_at_17, _ = received(transaction(), (17, 0), started=True)  # a charger counting across transactions
    running, _ = received(started_at_17, (18, 1), (21, 4))
    assert (running.seq_nos, running.last_seq_no, running.seq_no_gaps) == ("17-18,21", 21, None)
    done, _ = received(ended(running), (22, 5))
    assert done.seq_no_gaps == "19-20"
    assert received(done, (19, 2), (20, 3))[0].seq_no_gaps is None
    no_started, _ = received(ended(transaction()), (3, 0))
    assert no_started.seq_no_gaps == "0-2"


def test_events_out_of_order_are_new_and_only_exact_numbers_are_replays() -> None:
    """Below the highest number is not a replay: 1 after 2 is applied; 1 or 2 again are replays."""
    tx, fresh = received(transaction(), (0, 0), (2, 2), (1, 1), (1, 1), (2, 2), (0, 0))
    assert fresh == [True, True, True, False, False, False]
    assert (tx.seq_nos, tx.last_seq_no) == ("0-2", 2)
    assert received(ended(tx), (3, 3))[0].seq_no_gaps is None  # 1 came late: no gap


def test_a_restart_at_0_opens_a_new_numbering_and_resends_of_either_stay_replays() -> None:
    tx, fresh = received(transaction(), (0, 0), (1, 1), (2, 2), (3, 3))
    tx, fresh = received(tx, (0, 10), (1, 11))  # rebooted: later than every event seen, numbers seen again
    assert fresh == [True, True]
    assert (tx.seq_nos, tx.last_seq_no) == ("0-3|0-1", 1)
    assert [n.latest for n in numberings(tx)] == [at(3), at(11)]
    # Exact resends (same number and time) of the old numbering and of the new one: nothing new.
    resent, fresh = received(tx, (2, 2), (3, 3), (0, 0), (0, 10), (1, 11))
    assert fresh == [False] * 5 and resent == tx
    tx, fresh = received(tx, (2, 12), (5, 14))  # the new numbering goes on
    assert fresh == [True, True] and tx.seq_nos == "0-3|0-2,5"
    assert received(ended(tx), (6, 15))[0].seq_no_gaps == "after restart 1: 3-4"


def test_a_late_event_of_an_earlier_numbering_is_new_there() -> None:
    """Event 2 of the first count (lost, sent after the reboot): its time places it before the restart."""
    tx, _ = received(transaction(), (0, 0), (1, 1), (3, 3), (0, 10), (1, 11))
    tx, fresh = received(tx, (2, 2), (2, 2))
    assert fresh == [True, False] and tx.seq_nos == "0-3|0-1"
    assert received(ended(tx), (2, 12))[0].seq_no_gaps is None


def test_gaps_of_each_numbering_are_told_apart() -> None:
    tx, _ = received(transaction(), (0, 0), (3, 3), (1, 5), (2, 6), started=False)
    assert tx.seq_nos == "0,3|1-2"  # 1 after 3, later than 3: the station counted again (its 0 was lost)
    assert received(ended(tx), (4, 7))[0].seq_no_gaps == "1-2; after restart 1: 0, 3"


def test_an_old_event_at_the_same_instant_as_the_newest_is_no_restart() -> None:
    tx, fresh = received(transaction(), (0, 0), (2, 1), (1, 1))
    assert fresh == [True, True, True] and tx.seq_nos == "0-2"


def test_numberings_are_capped() -> None:
    tx = transaction()
    for restart in range(MAX_NUMBERINGS + 3):
        tx, fresh = received(tx, (0, 2 * restart))
        assert fresh == [restart < MAX_NUMBERINGS]  # beyond the cap, a 0 seen in the last numbering is a replay
    assert len(numberings(tx)) == MAX_NUMBERINGS


def test_a_row_from_before_tracking_is_complete_up_to_its_last_seq_no() -> None:
    legacy = transaction(last_seq_no=4)
    assert [n.seen.encode() for n in numberings(legacy)] == ["0-4"]
    # Its times are unknown: no restart can be told, a number seen stays a replay until a new event sets them.
    assert received(legacy, (2, 9)) == (legacy, [False])
    assert received(ended(legacy), (5, 0))[0].seq_no_gaps is None
    from_0012 = transaction(seq_nos="0-4", last_seq_no=4)  # numbers kept, times not yet
    tx, fresh = received(from_0012, (5, 5), (0, 6))
    assert fresh == [True, True] and tx.seq_nos == "0-5|0"


def test_gaps_below_zero_count_only_from_a_negative_started_seq_no() -> None:
    started, _ = received(transaction(), (-3, 0), started=True)
    done, _ = received(ended(started), (0, 1))
    assert (done.seq_nos, done.seq_no_gaps) == ("-3,0", "-2--1")
