"""The 2.0.1 TransactionEvent sequence numbers seen for one transaction: which events are replays, and the gaps among
them (anchor test #23).

A 2.0.1 charger numbers the events of each transaction from 0 (its Started) up (``seqNo``, "helps with determining
if all messages of a transaction have been received"). A number that never arrives is a lost event: a charger
drops a message it could not deliver after its retries (2.0.1 E12/E13, like 1.6 §3.7.1), and with it the readings
and state changes it carried. Keeping the set of numbers seen (as runs, so a transaction of thousands of events
costs a few bytes) tells replays from new events, and at the end which numbers are missing.

A replay is an event whose number was already received *in the same numbering*. Not "at or below the highest
number": events arrive out of order (an offline queue, a retry overtaken by the next event), and each of them
carries readings that exist nowhere else. A station that reboots mid-transaction may count from 0 again: that
starts a new numbering, whose small numbers are new events. Within one numbering the charger numbers its events
in the order they happen, so an event whose number is at or below the highest seen but whose timestamp is later
than every event seen cannot belong to it: it opens the next numbering. An exact resend keeps its timestamp, so it
never opens one: it falls in the numbering it was first sent in (no later than that numbering's latest event), where
its number is found. This decision is what keeps a resend from being applied twice: readings of a transaction have
no unique key in storage (only readings outside one do). Comparing whole contents would need every event kept; the
timestamp is the part of the content that tells a resend from a new count. Limit: a station whose clock went
backwards across the reboot has its new events taken as resends (the old rule, no worse).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace
from datetime import datetime

from csms.domain.transactions import Transaction, TransactionState

__all__ = [
    "MAX_NUMBERINGS",
    "MAX_RUNS",
    "Numbering",
    "SeqNumbers",
    "describe_runs",
    "numberings",
    "place",
    "with_event",
]

# A charger sending every other number would make one run per event; beyond this many runs a new number that
# starts a run of its own is not recorded (it is then reported as missing: a conservative error).
MAX_RUNS = 256
# A station rebooting over and over within one transaction: beyond this many numberings, an event that would open
# another is taken as part of the last one (a replay if its number was seen there: the old, conservative rule).
MAX_NUMBERINGS = 16

Run = tuple[int, int]  # first and last number, inclusive
_TOP = 2**63  # above any stored number (the schemas bound integers to int64)
# "7" or "3-5"; the schema does not forbid negative numbers, so "-2--1" is a run too.
_RUN = re.compile(r"(-?\d+)(?:-(-?\d+))?")


@dataclass(frozen=True, slots=True)
class SeqNumbers:
    """Sorted, disjoint, non-adjacent runs of the sequence numbers seen."""

    runs: tuple[Run, ...] = ()

    @classmethod
    def decode(cls, text: str | None) -> SeqNumbers:
        """From :meth:`encode`'s form, e.g. ``"0-5,7"``; None or empty is nothing seen."""
        if not text:
            return cls()
        runs = []
        for part in text.split(","):
            match = _RUN.fullmatch(part)
            if match is None:
                raise ValueError(f"not a run of sequence numbers: {part!r}")
            first = int(match[1])
            runs.append((first, int(match[2]) if match[2] is not None else first))
        return cls(tuple(runs))

    def encode(self) -> str | None:
        return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self.runs) or None

    def __contains__(self, number: object) -> bool:
        if not isinstance(number, int):
            return False
        index = bisect.bisect_right(self.runs, (number, _TOP)) - 1
        return index >= 0 and self.runs[index][0] <= number <= self.runs[index][1]

    @property
    def highest(self) -> int | None:
        return self.runs[-1][1] if self.runs else None

    def added(self, number: int) -> SeqNumbers:
        """These numbers and ``number`` (unchanged when it was seen, or would start run MAX_RUNS + 1)."""
        if number in self:
            return self
        runs = list(self.runs)
        index = bisect.bisect_left(runs, (number, number))
        joins_left = index > 0 and runs[index - 1][1] == number - 1
        joins_right = index < len(runs) and runs[index][0] == number + 1
        if joins_left and joins_right:
            runs[index - 1 : index + 1] = [(runs[index - 1][0], runs[index][1])]
        elif joins_left:
            runs[index - 1] = (runs[index - 1][0], number)
        elif joins_right:
            runs[index] = (number, runs[index][1])
        elif len(runs) >= MAX_RUNS:
            return self
        else:
            runs.insert(index, (number, number))
        return SeqNumbers(tuple(runs))

    def missing(self, first: int) -> tuple[Run, ...]:
        """The runs of numbers from ``first`` to the highest seen that never arrived."""
        gaps = []
        expected = first
        for a, b in self.runs:
            if a > expected:
                gaps.append((expected, a - 1))
            expected = max(expected, b + 1)
        return tuple(gaps)


@dataclass(frozen=True, slots=True)
class Numbering:
    """The numbers seen in one count from 0 and the latest timestamp among their events (None: not known, a row
    stored before timestamps were kept)."""

    seen: SeqNumbers
    latest: datetime | None


def describe_runs(runs: tuple[Run, ...]) -> str | None:
    """For operators: ``"3, 6-8"``; None when there are none."""
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs) or None


def numberings(transaction: Transaction) -> tuple[Numbering, ...]:
    """The numberings ``transaction`` has seen, oldest first (``seq_nos`` and ``seq_latest_at`` hold one entry each,
    separated by ``|``). A row stored before numbers were tracked has only its highest: it is taken as complete up
    to that (its gaps, if any, are unknown)."""
    if transaction.seq_nos is not None:
        runs = transaction.seq_nos.split("|")
        latest = (transaction.seq_latest_at or "").split("|")
        latest += [""] * (len(runs) - len(latest))
        return tuple(
            Numbering(SeqNumbers.decode(seen), datetime.fromisoformat(at) if at else None)
            for seen, at in zip(runs, latest, strict=False)
        )
    if transaction.last_seq_no is not None:
        return (Numbering(SeqNumbers(((min(0, transaction.last_seq_no), transaction.last_seq_no),)), None),)
    return ()


def place(counts: tuple[Numbering, ...], number: int, at: datetime) -> tuple[int, bool]:
    """Where event ``number`` stamped ``at`` belongs: (index of its numbering, ``len(counts)`` when it opens a new
    one; whether it was received already)."""
    if not counts:
        return 0, False
    # A numbering that was followed by another ends with its latest event: an event no later than that is its own
    # (a resend, or one of its events arriving late).
    for index, earlier in enumerate(counts[:-1]):
        if earlier.latest is not None and at <= earlier.latest:
            return index, number in earlier.seen
    current = counts[-1]
    highest = current.seen.highest
    restarted = current.latest is not None and at > current.latest and highest is not None and number <= highest
    if restarted and len(counts) < MAX_NUMBERINGS:
        return len(counts), False
    return len(counts) - 1, number in current.seen


def with_event(transaction: Transaction, number: int, at: datetime, started: bool = False) -> tuple[Transaction, bool]:
    """``transaction`` having received event ``number`` stamped ``at`` (its Started when ``started``), and whether
    the event is new (False: a replay, nothing of it to apply). Once the transaction has ended, its gaps are the
    numbers missing in each numbering: in the first from its Started's (0 when no Started arrived), in the later
    ones from 0, up to the highest seen."""
    counts = numberings(transaction)
    index, replayed = place(counts, number, at)
    if replayed:
        # Nothing new, but a transaction that has just ended (its Ended event repeating a number) settles its gaps.
        if transaction.state is TransactionState.ENDED:
            transaction = replace(transaction, seq_no_gaps=_describe_gaps(counts, transaction.started_seq_no))
        return transaction, False
    if index == len(counts):
        counts = (*counts, Numbering(SeqNumbers(), None))
    entry = counts[index]
    latest = at if entry.latest is None else max(entry.latest, at)
    counts = (*counts[:index], Numbering(entry.seen.added(number), latest), *counts[index + 1 :])
    updated = replace(
        transaction,
        seq_nos="|".join(count.seen.encode() or "" for count in counts),
        seq_latest_at="|".join(count.latest.isoformat() if count.latest else "" for count in counts),
        last_seq_no=counts[-1].seen.highest,
        started_seq_no=number if started else transaction.started_seq_no,
    )
    if updated.state is TransactionState.ENDED:
        updated = replace(updated, seq_no_gaps=_describe_gaps(counts, updated.started_seq_no))
    return updated, True


def _describe_gaps(counts: tuple[Numbering, ...], started_seq_no: int | None) -> str | None:
    """``"2, 4-5"``; the gaps of a later numbering are told apart: ``"2; after restart 1: 0-1"``."""
    parts = []
    for index, count in enumerate(counts):
        if index == 0:
            first = started_seq_no if started_seq_no is not None else 0
        else:
            lowest = count.seen.runs[0][0] if count.seen.runs else 0
            first = min(0, lowest)  # a restart counts from 0 (or from below, if this station numbers from below)
        gaps = describe_runs(count.seen.missing(first))
        if gaps is not None:
            parts.append(gaps if index == 0 else f"after restart {index}: {gaps}")
    return "; ".join(parts) or None
