"""The async engines (SQLite or PostgreSQL) and their session factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic_core
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from common.database.sqlite_driver import OneHopConnection, one_hop_dbapi

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
)


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# PostgreSQL connections per process: kept, and opened beyond those for a burst (`create_engine`).
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 5

# Execution option marking a connection whose transactions will write.
WRITE_OPTION = "jilu_write"
# Seconds a write transaction waits for its turn at the process's one SQLite write connection
# (`create_write_engine`) before the request is answered 503 "busy"; then SQLite's own
# busy_timeout bounds the wait for another process's writer.
WRITE_QUEUE_TIMEOUT = 10.0


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()
    # The driver must not open transactions itself; `_begin_sqlite` does (SQLAlchemy's recipe).
    dbapi_connection.isolation_level = None


def _begin_sqlite(connection: Any) -> None:
    """A write transaction takes SQLite's write lock up front (BEGIN IMMEDIATE), so what it
    read can never go stale before it writes: writers queue (in-process at the write engine,
    see `create_write_engine`; across processes in busy_timeout) instead of failing, and
    per-user change sequences are handed out in commit order."""
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
    dbapi_connection = connection.connection.dbapi_connection
    if isinstance(dbapi_connection, OneHopConnection):
        dbapi_connection.begin_with_next_statement(begin)  # one trip to its thread fewer
    else:
        connection.exec_driver_sql(begin)


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """An engine for `url`. SQLite gets its pragmas on every connection, its file's folder,
    and on a file, fewer and shorter trips to each connection's thread (`sqlite_driver`:
    a read of the record list went from 0.27 to 0.42 of the raw-aiosqlite floor, issue 11)."""
    if is_sqlite(url):
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            if parsed.get_driver_name() == "aiosqlite":
                kwargs.setdefault("module", one_hop_dbapi())
        engine = create_async_engine(url, json_deserializer=pydantic_core.from_json, **kwargs)
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _begin_sqlite)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # Up to 15 connections per process as before (SQLAlchemy's 5 + 10 overflow), but 10 of them
    # kept: an overflow connection is closed when it comes back, and under bench/load.py's mix
    # (25 users a port) half the open connections were under 5 s old, 3-5 new ones a second,
    # each a connect, authentication and asyncpg's type set-up on the request's path.
    kwargs.setdefault("pool_size", PG_POOL_SIZE)
    kwargs.setdefault("max_overflow", PG_MAX_OVERFLOW)
    return create_async_engine(url, json_deserializer=pydantic_core.from_json, **kwargs)


def create_write_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine for `engine`'s write transactions (`create_sessionmaker(..., write=True)`).

    SQLite lets one transaction write at a time. On a database file this is an engine with
    one connection of its own: the process's writers take turns at it in SQLAlchemy's pool
    queue (first come, first served, waiting on the event loop) for up to
    `WRITE_QUEUE_TIMEOUT`, instead of all holding connections that poll the file lock in
    SQLite's busy handler, where a burst of them runs out of busy_timeout (503s) and the lock
    goes to whoever polls at the right moment. Reads keep `engine`'s pool (WAL readers do not
    wait for the writer). PostgreSQL, which has row locks, and in-memory SQLite, which is one
    database per engine, get `engine` itself. The caller disposes of both (they may be one)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return engine
    # `create_engine` gives it `sqlite_driver`'s short trips: a turn at the write lock is not
    # spent waiting on a loop busy with the other requests.
    return create_engine(url, pool_size=1, max_overflow=0, pool_timeout=WRITE_QUEUE_TIMEOUT)


def create_sessionmaker(engine: AsyncEngine, *, write: bool = False) -> async_sessionmaker[AsyncSession]:
    """Sessions on `engine`; `write=True` for transactions that will write (see `_begin_sqlite`)."""
    bind = engine.execution_options(**{WRITE_OPTION: True}) if write else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)
