"""Group commit: many messages per database transaction, each reply sent only after its commit.

Each message's changes arrive as a :class:`WriteSet` and its sender awaits the commit before replying to the
charger (durability before reply). Two modes:

- inline (commits that do not wait for the disk): everything written during three turns of the event loop is
  committed together after them, on the loop's thread, with no queue, task or thread hop;
- threaded (fsync on commit): a writer task hands batches to a dedicated thread; whatever is queued while a
  commit runs becomes the next batch.

Either way throughput grows with load instead of paying one commit per message. Consecutive writes that use
the same statement are sent as one executemany. If a batch fails, each write set is retried alone so one bad
message cannot lose the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import operator
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import JSON, DateTime, Engine, PoolProxiedConnection
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import Executable

from csms.storage.tables import UtcDateTime

__all__ = ["DATABASE_ERRORS", "DatabaseError", "GroupCommitWriter", "Write", "WriteSet", "WriterClosed"]

log = structlog.get_logger(__name__)

_SQLITE = sqlite.dialect()
_FLUSH_AFTER_TURNS = 2

# The fast SQLite path talks to the sqlite3 driver directly, so its errors arrive unwrapped. A value the
# database cannot take (ValueError, TypeError, OverflowError) fails its own write set, never the writer.
DatabaseError = SQLAlchemyError | sqlite3.Error | ValueError | TypeError | OverflowError
DATABASE_ERRORS = (SQLAlchemyError, sqlite3.Error, ValueError, TypeError, OverflowError)


class WriterClosed(RuntimeError):
    """The writer is shutting down and takes no more writes."""


@dataclass(frozen=True, slots=True)
class Write:
    statement: Executable
    params: dict[str, Any]


@dataclass(slots=True)
class WriteSet:
    writes: Sequence[Write]
    done: asyncio.Future[None]


class GroupCommitWriter:
    """Commits write sets in batches.

    Args:
        engine: a synchronous engine with a single connection, used only by this writer.
        max_batch: most write sets per transaction.
        inline: commit on the event loop's thread. Right when a commit does not wait for the disk (SQLite WAL
            with synchronous=NORMAL, checkpoints done elsewhere): it saves two thread hops per batch, which
            under light load are most of a message's latency. With fsync on commit, use the writer thread.
    """

    def __init__(
        self,
        engine: Engine,
        max_batch: int = 512,
        inline: bool = False,
        checkpoint: Callable[[], None] | None = None,
        checkpoint_interval: float = 1.0,
    ) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._inline = inline
        self._checkpoint = checkpoint
        self._checkpoint_interval = checkpoint_interval
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._sqlite: PoolProxiedConnection | None = None
        self._pending: list[WriteSet] = []  # inline mode: write sets waiting for the end of this loop turn
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[WriteSet | None] = asyncio.Queue()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.committed_sets = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not self._inline:
            self._task = self._loop.create_task(self._run(), name="group-commit-writer")
        if self._checkpoint is not None:
            self._checkpoint_task = self._loop.create_task(self._checkpoints(), name="wal-checkpoints")

    async def _checkpoints(self) -> None:
        assert self._loop is not None and self._checkpoint is not None
        while True:
            await asyncio.sleep(self._checkpoint_interval)
            try:
                await self._loop.run_in_executor(self._thread, self._checkpoint)
            except DATABASE_ERRORS as exc:
                # A checkpoint only tidies the WAL; the data is already committed. Try again next time.
                log.warning("WAL checkpoint failed", error=str(exc))

    async def write(self, writes: Sequence[Write]) -> None:
        """Queue ``writes`` as one unit and return once they are committed.

        Raises:
            WriterClosed: after :meth:`close` began.
            SQLAlchemyError, sqlite3.Error: when these writes cannot be committed (the others in the batch still
                are).
        """
        if not writes:
            return
        if self._closing or self._loop is None:
            raise WriterClosed("storage is shutting down")
        write_set = WriteSet(writes, self._loop.create_future())
        if self._inline:
            # What is written during this turn of the event loop and the next _FLUSH_AFTER_TURNS is committed
            # together: the extra turns (each a non-blocking poll) let frames that arrived meanwhile join the
            # batch. Measured at 10 chargers: one turn ~2.9x the baseline, two ~3.2x, three ~3.4x, with lower
            # latency too, because fewer commits are queued ahead of each reply.
            self._pending.append(write_set)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush_after, _FLUSH_AFTER_TURNS)
        else:
            self._queue.put_nowait(write_set)
        await write_set.done

    def _flush_after(self, turns: int) -> None:
        assert self._loop is not None
        if turns:
            self._loop.call_soon(self._flush_after, turns - 1)
        else:
            self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self._max_batch):
            batch = pending[start : start + self._max_batch]
            outcomes = self._commit([ws.writes for ws in batch])
            for write_set, error in zip(batch, outcomes, strict=True):
                _settle(write_set, error)

    async def close(self) -> None:
        """Commit everything already queued, then stop."""
        self._closing = True
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
        if self._pending:
            self._flush()
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoint_task
            if self._checkpoint is not None:
                await asyncio.get_running_loop().run_in_executor(self._thread, self._checkpoint)
        self._thread.shutdown(wait=True)
        if self._sqlite is not None:
            self._sqlite.close()
        self._engine.dispose()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
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
            if not batch:
                continue
            outcomes = await loop.run_in_executor(self._thread, self._commit, [ws.writes for ws in batch])
            for write_set, error in zip(batch, outcomes, strict=True):
                _settle(write_set, error)

    def _commit(self, batch: list[Sequence[Write]]) -> list[DatabaseError | None]:
        """Commit the batch, or each write set alone if the batch fails (on the loop or the writer thread)."""
        try:
            self._transaction(batch)
        except DATABASE_ERRORS as exc:
            if len(batch) == 1:
                return [exc]
            log.warning("batch commit failed, retrying writes one by one", size=len(batch), error=str(exc))
            return [self._commit_alone(writes) for writes in batch]
        self.batches += 1
        self.committed_sets += len(batch)
        return [None] * len(batch)

    def _commit_alone(self, writes: Sequence[Write]) -> DatabaseError | None:
        try:
            self._transaction([writes])
        except DATABASE_ERRORS as exc:
            return exc
        self.committed_sets += 1
        return None

    def _transaction(self, batch: list[Sequence[Write]]) -> None:
        if self._engine.dialect.name != "sqlite":
            with self._engine.begin() as conn:
                _execute_coalesced(lambda statement, params: conn.execute(statement, params), batch)
            return
        # SQLite: the writer keeps one driver connection for its lifetime. SQLAlchemy's per-transaction
        # checkout and bookkeeping cost more than the commit itself at thousands of small batches per second.
        if self._sqlite is None:
            self._sqlite = self._engine.raw_connection()
        driver: sqlite3.Connection = self._sqlite.driver_connection  # type: ignore[assignment]
        try:
            _execute_coalesced(functools.partial(_execute_sqlite, driver), batch)
            driver.commit()
        except BaseException:
            driver.rollback()
            raise


@dataclass(frozen=True, slots=True)
class _SqliteStatement:
    """A statement compiled once for the sqlite3 driver, with what turning a params dict into a row takes."""

    sql: str
    row: Callable[[dict[str, Any]], tuple[Any, ...]]  # params dict -> values in placeholder order
    convert: tuple[int, ...]  # positions holding datetimes or JSON, which need converting


@functools.lru_cache(maxsize=256)
def _compiled_sqlite(statement: Executable, keys: tuple[str, ...]) -> _SqliteStatement:
    compiled = statement.compile(dialect=_SQLITE, column_keys=list(keys))  # type: ignore[attr-defined]
    order = tuple(compiled.positiontup or ())
    # Values the statement binds itself (e.g. ``state='ended'``) are constants of every row.
    bound = compiled.construct_params(dict.fromkeys(keys))
    own_values = {key: value for key, value in bound.items() if key not in keys}
    getter: Callable[[dict[str, Any]], tuple[Any, ...]]
    if len(order) == 1:
        single = operator.itemgetter(order[0])  # itemgetter of one key returns a bare value, not a tuple
        getter = lambda params: (single(params),)  # noqa: E731
    else:
        getter = operator.itemgetter(*order) if order else (lambda params: ())
    row = (lambda params: getter({**own_values, **params})) if own_values else getter
    convert = tuple(
        index for index, key in enumerate(order) if isinstance(compiled.binds[key].type, UtcDateTime | DateTime | JSON)
    )
    return _SqliteStatement(str(compiled), row, convert)


def _execute_sqlite(driver: sqlite3.Connection, statement: Executable, params: list[dict[str, Any]]) -> None:
    """executemany straight on the sqlite3 cursor with SQL compiled once by SQLAlchemy.

    SQLAlchemy's per-execution bookkeeping costs more than SQLite's work for the small, hot writes of a charger
    fleet (measured with py-spy under load). Values are converted here as the column types would, and only in
    the columns that need it (datetimes, JSON).
    """
    compiled = _compiled_sqlite(statement, tuple(params[0]))
    rows: list[Any] = [compiled.row(row) for row in params]
    if compiled.convert:
        cache: dict[int, Any] = {}  # the same timestamp object recurs in many rows of one message
        for index, values in enumerate(rows):
            converted = list(values)
            for position in compiled.convert:
                value = converted[position]
                key = id(value)
                if key not in cache:
                    cache[key] = (value, _sqlite_value(value))
                converted[position] = cache[key][1]
            rows[index] = converted
    cursor = driver.cursor()
    try:
        cursor.executemany(compiled.sql, rows)
    finally:
        cursor.close()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the database")
        # The storage format of SQLAlchemy's SQLite DATETIME ("%Y-%m-%d %H:%M:%S.%f"), so reads and
        # comparisons see the same text; isoformat writes it several times faster than strftime.
        utc = value if value.tzinfo is UTC else value.astimezone(UTC)
        return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def _execute_coalesced(
    execute_run: Callable[[Executable, list[dict[str, Any]]], Any], batch: list[Sequence[Write]]
) -> None:
    # Write sets in one batch come from different stations (each station has one message in flight), so their
    # relative order is free: sort them by statement shape to make long runs of one statement, keeping the
    # order of writes within each set.
    ordered = sorted(batch, key=lambda writes: tuple(id(w.statement) for w in writes))
    run_statement: Executable | None = None
    run_params: list[dict[str, Any]] = []
    for writes in ordered:
        for write in writes:
            if run_params and (write.statement is not run_statement or write.params.keys() != run_params[0].keys()):
                execute_run(run_statement, run_params)  # type: ignore[arg-type]
                run_params = []
            run_statement = write.statement
            run_params.append(write.params)
    if run_params:
        execute_run(run_statement, run_params)  # type: ignore[arg-type]


def _settle(write_set: WriteSet, error: BaseException | None) -> None:
    # The sender may have been cancelled (its connection dropped): the data is committed regardless.
    with contextlib.suppress(asyncio.InvalidStateError):
        if error is None:
            write_set.done.set_result(None)
        else:
            write_set.done.set_exception(error)
