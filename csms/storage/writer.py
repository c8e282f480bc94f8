"""Group commit: one writer task, many messages per database transaction.

Each message's changes arrive as a :class:`WriteSet` and its sender awaits the commit before replying to the
charger (durability before reply). Whatever is queued while a commit runs becomes the next batch, so throughput
grows with load instead of paying one fsync per message. Consecutive writes that use the same statement are sent
as one executemany. If a batch fails, each write set is retried alone so one bad message cannot lose the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

__all__ = ["GroupCommitWriter", "Write", "WriteSet", "WriterClosed"]

log = structlog.get_logger(__name__)


class WriterClosed(RuntimeError):
    """The writer is shutting down and takes no more writes."""


@dataclass(frozen=True, slots=True)
class Write:
    statement: Executable
    params: dict[str, Any]


@dataclass(slots=True)
class WriteSet:
    writes: Sequence[Write]
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommitWriter:
    def __init__(self, engine: AsyncEngine, max_batch: int = 512) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[WriteSet | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.committed_sets = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit-writer")

    async def write(self, writes: Sequence[Write]) -> None:
        """Queue ``writes`` as one unit and return once they are committed.

        Raises:
            WriterClosed: after :meth:`close` began.
            SQLAlchemyError: when these writes cannot be committed (the others in the batch still are).
        """
        if not writes:
            return
        if self._closing:
            raise WriterClosed("storage is shutting down")
        write_set = WriteSet(writes)
        self._queue.put_nowait(write_set)
        await write_set.done

    async def close(self) -> None:
        """Commit everything already queued, then stop."""
        self._closing = True
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            batch: list[WriteSet] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                await self._commit_batch(batch)

    async def _commit_batch(self, batch: list[WriteSet]) -> None:
        try:
            async with self._engine.begin() as conn:
                await _execute_coalesced(conn, batch)
        except SQLAlchemyError as exc:
            if len(batch) == 1:
                _settle(batch[0], exc)
                return
            log.warning("batch commit failed, retrying writes one by one", size=len(batch), error=str(exc))
            for write_set in batch:
                await self._commit_alone(write_set)
            return
        self.batches += 1
        self.committed_sets += len(batch)
        for write_set in batch:
            _settle(write_set, None)

    async def _commit_alone(self, write_set: WriteSet) -> None:
        try:
            async with self._engine.begin() as conn:
                await _execute_coalesced(conn, [write_set])
        except SQLAlchemyError as exc:
            _settle(write_set, exc)
        else:
            self.committed_sets += 1
            _settle(write_set, None)


async def _execute_coalesced(conn: AsyncConnection, batch: list[WriteSet]) -> None:
    # Write sets in one batch come from different stations (each station has one message in flight), so their
    # relative order is free: sort them by statement shape to make long runs of one statement, keeping the
    # order of writes within each set.
    ordered = sorted(batch, key=lambda ws: tuple(id(w.statement) for w in ws.writes))
    run_statement: Executable | None = None
    run_params: list[dict[str, Any]] = []
    for write_set in ordered:
        for write in write_set.writes:
            if write.statement is not run_statement and run_params:
                await conn.execute(run_statement, run_params)  # type: ignore[arg-type]
                run_params = []
            run_statement = write.statement
            run_params.append(write.params)
    if run_params:
        await conn.execute(run_statement, run_params)  # type: ignore[arg-type]


def _settle(write_set: WriteSet, error: BaseException | None) -> None:
    # The sender may have been cancelled (its connection dropped): the data is committed regardless.
    with contextlib.suppress(asyncio.InvalidStateError):
        if error is None:
            write_set.done.set_result(None)
        else:
            write_set.done.set_exception(error)
