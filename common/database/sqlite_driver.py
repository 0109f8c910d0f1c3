"""SQLAlchemy's aiosqlite driver with fewer and shorter trips to each connection's thread,
for every engine on a SQLite file (`engine.create_engine`). It matters most on the one write
connection of a process (`engine.create_write_engine`), where every other writer of the
process waits while a write transaction runs, and on reads it is most of what separates the
record list from a raw aiosqlite loop.

aiosqlite runs each call on its connection's thread and hands the result back to the event
loop. SQLAlchemy's adapter makes three or four such trips per statement (make a cursor,
execute, fetch the rows, close the cursor), one for `BEGIN` and one for the pool's rollback
of a connection it takes back, even a committed one. And each trip, on a loop busy with
other requests, costs far more than the statement: the loop's thread keeps the GIL the
connection's thread needs (for up to the interpreter's 5 ms switch interval), and the
result then waits behind the other requests' work. Here:
- a statement is one trip: execute, fetch every row, note what the cursor said, close it;
- `BEGIN` goes with the transaction's first statement (`begin_with_next_statement`);
- a commit or rollback with no transaction open makes no trip (sqlite3 does nothing then);
- the loop's thread blocks for a trip up to `SPIN_SECONDS` before it awaits it (`_trip`);
- once `BEGIN IMMEDIATE` holds SQLite's write lock, a small INSERT runs on the loop's thread
  itself (`_runs_inline`): it can wait for no lock then, and takes microseconds;
- the processes' writers take turns at a lock file first (`WriterLock`, below).

SQLAlchemy's adapter is kept for everything else: rows are buffered as they were, errors are
raised as they were, server-side cursors are unchanged. This reaches into aiosqlite's
`Connection` (its queue and sqlite3 connection, as its own methods use them) and SQLAlchemy's
adapter classes, whose versions `requirements.txt` pins; `tests/common/test_sqlite_driver.py`
runs it against them.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

logger = logging.getLogger(__name__)

# How long the loop's thread waits, blocked, for a trip to the connection's thread (`_trip`).
SPIN_SECONDS = 0.001
# An INSERT of at most this many rows, with no SELECT in it, runs on the loop's thread once
# the write lock is held: it takes microseconds (a record's rows, its tags, its search row).
INLINE_MAX_ROWS = 64
_SMALL_INSERT = re.compile(r"\s*INSERT\b(?!.*\bSELECT\b)", re.IGNORECASE | re.DOTALL)


class _Done:
    """What a finished statement's cursor said; stands in for the cursor, closed already."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid
        self.arraysize = cursor.arraysize

    def close(self) -> None:
        """Closed already (`_run`)."""


# The wait for `WriterLock`: busy_timeout's (common/database/engine.py), retried every 0.5 ms
# at first, then every 5 ms.
WRITER_LOCK_WAIT_SECONDS = 5.0
WRITER_LOCK_FIRST_PAUSE, WRITER_LOCK_MAX_PAUSE = 0.0005, 0.005
_pause = time.sleep


class WriterLock:
    """The processes' write transactions on one database file take turns here before
    `BEGIN IMMEDIATE`: an exclusive `flock` on `<database>-writer.lock`, one open file per
    connection, taken on the connection's thread and released when its transaction ends.

    SQLite alone makes a writer of another process poll for its lock, sleeping up to 100 ms
    between tries (its busy handler), while the process that holds it hands it straight to its
    own next writer: under load (web, mobile and llm_service writing at once) the write
    threads spent half their time asleep in `BEGIN IMMEDIATE` while the lock was free, creates
    waited seconds and some ran out of busy_timeout (bench/load.py). A waiter here tries again
    every few milliseconds. The wait is bounded as SQLite's is (`WRITER_LOCK_WAIT_SECONDS`,
    busy_timeout): a write transaction can wait on more than the database (its record event
    goes to Redis inside it), so a holder may be slow to let go; past the bound, the writer
    goes on to SQLite's own lock, which answers "busy" (503) if it is still held. A writer
    that dies releases its lock with its file. Writers that do not take part (a migration, a
    backup, `sqlite3` in a shell) still meet SQLite's own lock and busy_timeout."""

    __slots__ = ("fd", "held", "path", "unusable")

    def __init__(self, database: str) -> None:
        self.path = f"{database}-writer.lock"
        self.fd: int | None = None
        self.held = False
        self.unusable = False  # the file cannot be made (a full or read-only disk): SQLite's lock alone

    def acquire(self) -> None:
        if self.unusable:
            return
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self.unusable = True
                logger.warning("no writer lock file at %s (%s): SQLite's busy handler alone", self.path, exc)
                return
        deadline = time.monotonic() + WRITER_LOCK_WAIT_SECONDS
        pause = WRITER_LOCK_FIRST_PAUSE
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return  # not held: SQLite's own lock and busy_timeout decide
                _pause(pause)  # on the connection's thread, never the event loop's
                pause = min(pause * 2, WRITER_LOCK_MAX_PAUSE)
                continue
            self.held = True
            return

    def release(self) -> None:
        if self.held and self.fd is not None:
            self.held = False
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.release()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _run(
    connection: sqlite3.Connection,
    begin: str | None,
    operation: str,
    parameters: Any,
    many: bool,
    writer_lock: WriterLock | None = None,
) -> tuple[_Done, list[Any]]:
    """`begin` if given (after `writer_lock`, for `BEGIN IMMEDIATE`), then one statement: its
    rows and what its cursor said."""
    if begin is not None:
        locking = begin == "BEGIN IMMEDIATE" and writer_lock is not None and not writer_lock.held
        if locking:
            writer_lock.acquire()  # type: ignore[union-attr]
        try:
            connection.execute(begin).close()
        except BaseException:
            if locking:
                writer_lock.release()  # type: ignore[union-attr]
            raise
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        return _Done(cursor), cursor.fetchall() if cursor.description else []
    finally:
        cursor.close()


class _Outcome:
    """A call's result or error, and a flag the loop's thread can block on."""

    __slots__ = ("error", "finished", "value")

    def __init__(self) -> None:
        self.finished = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self, call: Callable[[], Any]) -> None:
        try:
            self.value = call()
        except BaseException as exc:  # noqa: BLE001 - raised again in the waiting coroutine
            self.error = exc
        finally:
            self.finished.set()

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


async def _trip(driver: aiosqlite.Connection, call: Callable[[], Any]) -> Any:
    """`call()` on the connection's thread. The loop's thread blocks up to `SPIN_SECONDS` for
    it, which lets that thread have the GIL at once; a longer call (another process holds
    SQLite's lock, a checkpoint) is then awaited as aiosqlite would."""
    outcome = _Outcome()
    future = asyncio.get_running_loop().create_future()
    # aiosqlite's own queue, as its `Connection._execute` uses it. `outcome.run` never raises,
    # so the future always gets a value, unread when `finished` was seen in time.
    driver._tx.put_nowait((future, partial(outcome.run, call)))
    if not outcome.finished.wait(SPIN_SECONDS):
        await future
    return outcome.result()


def _runs_inline(operation: str, parameters: Any, many: bool) -> bool:
    return (not many or len(parameters) <= INLINE_MAX_ROWS) and _SMALL_INSERT.match(operation) is not None


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's aiosqlite cursor, each statement one trip (or none, `_runs_inline`)."""

    __slots__ = ()
    _awaitable_cursor_close = False  # `_Done.close`: nothing left to close

    def _make_new_cursor(self, connection: Any) -> Any:
        return None  # made per statement (`_run`)

    def _aenter_cursor(self, cursor: Any) -> Any:
        return cursor

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._statement(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._statement(operation, seq_of_parameters, many=True)

    async def _statement(self, operation: str, parameters: Any, *, many: bool) -> None:
        connection = self._adapt_connection
        assert isinstance(connection, OneHopConnection)
        driver = connection.driver
        async with connection._execute_mutex:
            begin, connection.pending_begin = connection.pending_begin, None
            raw = driver._connection
            if (
                begin is None
                and connection.holds_write_lock
                and raw is not None
                and _runs_inline(operation, parameters, many)
            ):
                done, rows = _run(raw, None, operation, parameters, many)
            else:
                # `_conn` is read on the thread: it raises there if the connection is closed.
                lock = connection.writer_lock
                done, rows = await _trip(driver, lambda: _run(driver._conn, begin, operation, parameters, many, lock))
                connection.holds_write_lock = connection.holds_write_lock or begin == "BEGIN IMMEDIATE"
        self._cursor = done  # type: ignore[assignment]
        self._rows = deque(rows)

    @property
    def description(self) -> Sequence[Any] | None:  # type: ignore[override]
        return self._cursor.description if self._cursor is not None else None


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's adapted aiosqlite connection with `OneHopCursor` and a deferred BEGIN."""

    __slots__ = ("holds_write_lock", "pending_begin", "writer_lock")
    _cursor_cls = OneHopCursor

    def __init__(self, dbapi: Any, connection: Any, writer_lock: WriterLock | None = None) -> None:
        super().__init__(dbapi, connection)  # an `aiosqlite.Connection`
        self.pending_begin: str | None = None
        self.holds_write_lock = False  # `BEGIN IMMEDIATE` succeeded, no COMMIT/ROLLBACK since
        self.writer_lock = writer_lock  # on a database file

    @property
    def driver(self) -> aiosqlite.Connection:
        driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        return driver

    def begin_with_next_statement(self, begin: str) -> None:
        """Open the transaction (`begin`: `BEGIN` or `BEGIN IMMEDIATE`) on the same trip as
        the next statement rather than on one of its own; its error is that statement's."""
        self.pending_begin = begin

    def rollback(self) -> None:
        if not self._nothing_open():
            self._end("rollback")
        self._release_writer_lock()

    def commit(self) -> None:
        if not self._nothing_open():
            self._end("commit")
        self._release_writer_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.writer_lock is not None:
                self.writer_lock.close()

    def terminate(self) -> None:
        """An invalidated connection (e.g. its request was cancelled mid-transaction): SQLite
        rolls its transaction back as it closes; its turn at the lock file ends too."""
        try:
            super().terminate()
        finally:
            if self.writer_lock is not None:
                self.writer_lock.close()

    def _release_writer_lock(self) -> None:
        """Once the transaction is over (a failed COMMIT leaves it open, for the rollback)."""
        lock = self.writer_lock
        if lock is not None and lock.held and (self.driver._connection is None or not self.driver.in_transaction):
            lock.release()

    def _nothing_open(self) -> bool:
        """No transaction is open: it never began, or it is over (a committed connection that
        the pool takes back). Reading `in_transaction` on the loop is what aiosqlite does."""
        never_began = self.pending_begin is not None
        self.pending_begin = None
        self.holds_write_lock = False
        return never_began or (self.driver._connection is not None and not self.driver.in_transaction)

    def _end(self, how: str) -> None:
        """COMMIT or ROLLBACK, on the connection's thread (it may checkpoint the WAL)."""
        driver = self.driver
        lock = self.writer_lock

        def end() -> None:
            connection = driver._conn
            try:
                getattr(connection, how)()
            finally:  # on the same trip: the next writer's turn starts now
                if lock is not None and lock.held and not connection.in_transaction:
                    lock.release()

        try:
            await_(_trip(driver, end))
        except Exception as error:  # noqa: BLE001 - translated, as SQLAlchemy's adapter does
            self._handle_exception(error)


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The module SQLAlchemy's aiosqlite dialect is given (`create_async_engine(module=…)`)."""

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        """As `AsyncAdapt_aiosqlite_dbapi.connect` (aiosqlite 0.22), with `OneHopConnection`.
        The sqlite3 connection may be used from the loop's thread too (`_runs_inline`): never
        at the same time as from its own, since both go through the adapter's mutex."""
        kw["check_same_thread"] = False
        database = str(arg[0] if arg else kw.get("database", ""))
        on_file = database not in ("", ":memory:") and not kw.get("uri") and not database.startswith("file:")
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy does: a forgotten connection ends with the process
        return OneHopConnection(self, await_(connection), WriterLock(database) if on_file else None)


def one_hop_dbapi() -> OneHopDBAPI:
    return OneHopDBAPI(aiosqlite, sqlite3)
