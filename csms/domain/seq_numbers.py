"""The 2.0.1 TransactionEvent sequence numbers seen for one transaction, and the gaps among them (anchor test #23).

A 2.0.1 charger numbers the events of each transaction from 0 (its Started) up (``seqNo``, "helps with determining
if all messages of a transaction have been received"). A number that never arrives is a lost event: a charger
drops a message it could not deliver after its retries (2.0.1 E12/E13, like 1.6 §3.7.1), and with it the readings
and state changes it carried. Keeping the set of numbers seen (as runs, so a transaction of thousands of events
costs a few bytes) tells replays (a number seen already) from new events, and at the end which numbers are
missing. A station that reboots and restarts its count at 0 repeats numbers already seen: that is no gap.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace

from csms.domain.transactions import Transaction, TransactionState

__all__ = ["MAX_RUNS", "SeqNumbers", "describe_runs", "seen_seq_nos", "with_seq_no"]

# A charger sending every other number would make one run per event; beyond this many runs a new number that
# starts a run of its own is not recorded (it is then reported as missing: a conservative error).
MAX_RUNS = 256

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


def describe_runs(runs: tuple[Run, ...]) -> str | None:
    """For operators: ``"3, 6-8"``; None when there are none."""
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs) or None


def seen_seq_nos(transaction: Transaction) -> SeqNumbers:
    """The numbers ``transaction`` has seen. A row stored before they were tracked has only its highest: it is
    taken as complete up to that (its gaps, if any, are unknown)."""
    if transaction.seq_nos is not None:
        return SeqNumbers.decode(transaction.seq_nos)
    if transaction.last_seq_no is not None:
        return SeqNumbers(((min(0, transaction.last_seq_no), transaction.last_seq_no),))
    return SeqNumbers()


def with_seq_no(transaction: Transaction, number: int, started: bool = False) -> Transaction:
    """``transaction`` having seen event ``number`` (its Started's when ``started``). Once it has ended, its gaps
    are the numbers from its Started's (0 when no Started arrived) to the highest seen that never arrived."""
    seen = seen_seq_nos(transaction).added(number)
    highest = number if transaction.last_seq_no is None else max(transaction.last_seq_no, number)
    updated = replace(
        transaction,
        seq_nos=seen.encode(),
        last_seq_no=highest,
        started_seq_no=number if started else transaction.started_seq_no,
    )
    if updated.state is TransactionState.ENDED:
        first = updated.started_seq_no if updated.started_seq_no is not None else 0
        updated = replace(updated, seq_no_gaps=describe_runs(seen.missing(first)))
    return updated
