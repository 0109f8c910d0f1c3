"""The SQLite write engine and its driver (`common/database/sqlite_driver.py`), run against the
installed SQLAlchemy and aiosqlite: statements answer as SQLAlchemy's own driver would, a
write transaction holds SQLite's write lock from its first statement to its end, and it
makes as few trips to the connection's thread as it can."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.database import create_engine, create_sessionmaker, create_write_engine, sqlite_driver, transaction
from common.database import engine as engine_module


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "jilu.db"


@pytest.fixture
async def engines(database: Path) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    writer = create_write_engine(engine)
    async with writer.begin() as connection:
        await connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT UNIQUE)"))
    try:
        yield engine, writer
    finally:
        await writer.dispose()
        await engine.dispose()


@pytest.fixture
def writes(engines: tuple[AsyncEngine, AsyncEngine]) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engines[1], write=True)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each trip to the connection's thread ran, in order."""
    seen: list[str] = []
    real = sqlite_driver._trip

    async def counted(driver: Any, call: Callable[[], Any]) -> Any:
        seen.append(getattr(call, "__qualname__", "?"))
        return await real(driver, call)

    monkeypatch.setattr(sqlite_driver, "_trip", counted)
    return seen


def other_writer(database: Path) -> sqlite3.Connection:
    """Another process's connection, as far as SQLite can tell: it waits for no lock."""
    return sqlite3.connect(database, isolation_level=None, timeout=0)


async def test_statements_answer_as_sqlalchemys_driver_does(writes: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(writes) as session:
        returned = await session.execute(text("INSERT INTO notes (title) VALUES (:t) RETURNING id"), {"t": "a"})
        assert returned.scalar_one() == 1
        plain = await session.execute(text("INSERT INTO notes (title) VALUES (:t)"), {"t": "b"})
        assert plain.lastrowid == 2  # type: ignore[attr-defined]
        many = await session.execute(text("INSERT INTO notes (title) VALUES (:t)"), [{"t": "c"}, {"t": "d"}])
        assert many.rowcount == 2  # type: ignore[attr-defined]
        updated = await session.execute(text("UPDATE notes SET title = title || '!' WHERE id > 2"))
        assert updated.rowcount == 2  # type: ignore[attr-defined]
        rows = await session.execute(text("SELECT id, title FROM notes ORDER BY id"))
        assert list(rows.keys()) == ["id", "title"]
        assert [tuple(row) for row in rows] == [(1, "a"), (2, "b"), (3, "c!"), (4, "d!")]
    with pytest.raises(IntegrityError):
        async with transaction(writes) as session:
            await session.execute(text("INSERT INTO notes (title) VALUES ('e')"))
            await session.execute(text("INSERT INTO notes (title) VALUES ('a')"))  # taken: all undone
    with pytest.raises(OperationalError, match="no such column"):
        async with transaction(writes) as session:
            await session.execute(text("SELECT no_column FROM notes"))
    async with writes() as session:
        assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 4


async def test_a_write_transaction_holds_the_lock_from_its_first_statement_to_its_end(
    writes: async_sessionmaker[AsyncSession], database: Path
) -> None:
    other = other_writer(database)
    try:
        async with transaction(writes) as session:
            other.execute("BEGIN IMMEDIATE")  # nothing was run yet: the lock is free
            other.execute("ROLLBACK")
            await session.execute(text("SELECT count(*) FROM notes"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            await session.execute(text("INSERT INTO notes (title) VALUES ('kept')"))  # on the loop's thread
        other.execute("BEGIN IMMEDIATE")
        assert other.execute("SELECT title FROM notes").fetchall() == [("kept",)]
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_a_rollback_undoes_what_ran_on_the_loops_thread(writes: async_sessionmaker[AsyncSession]) -> None:
    async with writes() as session, session.begin():
        await session.execute(text("SELECT 1"))
        await session.execute(text("INSERT INTO notes (title) VALUES ('gone')"))
        await session.rollback()
    async with writes() as session:
        assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 0


async def test_a_transaction_makes_few_trips(writes: async_sessionmaker[AsyncSession], trips: list[str]) -> None:
    async with transaction(writes) as session:
        await session.execute(text("SELECT count(*) FROM notes"))  # with BEGIN IMMEDIATE
        await session.execute(text("INSERT INTO notes (title) VALUES ('x')"))  # none: on the loop's thread
        await session.execute(text("INSERT INTO notes (title) VALUES (:t)"), [{"t": "y"}, {"t": "z"}])  # none
        await session.execute(text("DELETE FROM notes WHERE title = 'z'"))  # one
    assert len(trips) == 3  # and COMMIT; the pool's rollback of the committed connection none
    trips.clear()
    async with transaction(writes):
        pass
    async with transaction(writes) as session:
        session.add_all([])  # a session that never ran a statement: no BEGIN, no COMMIT
    assert trips == []


async def test_a_read_is_two_trips(engines: tuple[AsyncEngine, AsyncEngine], trips: list[str]) -> None:
    """The read engine has the same driver: a request's read is its statement (with the
    deferred BEGIN) and its COMMIT, where SQLAlchemy's driver made five or six trips."""
    reads = create_sessionmaker(engines[0])
    async with transaction(reads) as session:  # connects: the pragmas' trips
        await session.execute(text("SELECT 1"))
    trips.clear()
    async with transaction(reads) as session:
        assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 0
    assert len(trips) == 2


async def test_a_busy_database_fails_the_first_statement(
    database: Path, monkeypatch: pytest.MonkeyPatch, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    """Another process holds SQLite's lock past busy_timeout: the first statement fails with
    SQLite's 'database is locked' (a 503 in the apps), and the connection serves the next one."""
    _, writer = engines
    await writer.dispose()  # new connections, with a short busy_timeout
    pragmas = tuple(p if "busy_timeout" not in p else "PRAGMA busy_timeout=50" for p in engine_module.SQLITE_PRAGMAS)
    monkeypatch.setattr(engine_module, "SQLITE_PRAGMAS", pragmas)
    writes = create_sessionmaker(writer, write=True)
    other = other_writer(database)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked"):
            async with transaction(writes) as session:
                await session.execute(text("INSERT INTO notes (title) VALUES ('late')"))
        other.execute("ROLLBACK")
        async with transaction(writes) as session:
            await session.execute(text("INSERT INTO notes (title) VALUES ('in time')"))
    finally:
        other.close()
    async with writes() as session:
        assert (await session.execute(text("SELECT title FROM notes"))).scalars().all() == ["in time"]


async def test_only_a_sqlite_file_gets_a_write_engine_of_its_own(tmp_path: Path) -> None:
    memory = create_engine("sqlite+aiosqlite:///:memory:")
    file = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'jilu.db'}")
    writer = create_write_engine(file)
    try:
        assert create_write_engine(memory) is memory  # one database per engine: no second one
        assert writer is not file
        assert writer.pool.size() == 1  # type: ignore[attr-defined]
        assert isinstance(writer.dialect.loaded_dbapi, sqlite_driver.OneHopDBAPI)
        assert isinstance(file.dialect.loaded_dbapi, sqlite_driver.OneHopDBAPI)  # reads too
    finally:
        for engine in (memory, file, writer):
            await engine.dispose()


class LockWaits:
    """Counts the pauses writers take at the lock file (`WriterLock` sleeps between tries)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pauses = 0

        def counted(seconds: float) -> None:
            self.pauses += 1
            time.sleep(seconds)

        monkeypatch.setattr(sqlite_driver, "_pause", counted)

    async def wait_for_waiter(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        start = self.pauses
        while self.pauses == start:
            assert time.monotonic() < deadline, "no writer waited at the lock file"
            await asyncio.sleep(0.01)


async def test_writers_of_two_engines_take_turns_at_the_lock_file(
    database: Path, monkeypatch: pytest.MonkeyPatch, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    """A second write engine on the file (as another process has) waits at the lock file for
    the first one's transaction, however short SQLite's busy_timeout, instead of polling for
    SQLite's lock and giving up: it writes as soon as the first commits, and a rollback or
    an invalidated connection gives the turn back too."""
    _, writer = engines
    await writer.dispose()  # new connections, with a busy_timeout the wait would run out of
    pragmas = tuple(p if "busy_timeout" not in p else "PRAGMA busy_timeout=50" for p in engine_module.SQLITE_PRAGMAS)
    monkeypatch.setattr(engine_module, "SQLITE_PRAGMAS", pragmas)
    other = create_write_engine(create_engine(f"sqlite+aiosqlite:///{database}"))
    waits = LockWaits(monkeypatch)
    first, second = create_sessionmaker(writer, write=True), create_sessionmaker(other, write=True)

    async def insert(sessions: async_sessionmaker[AsyncSession], title: str) -> None:
        async with transaction(sessions) as session:
            await session.execute(text("INSERT INTO notes (title) VALUES (:t)"), {"t": title})

    try:
        async with transaction(first) as session:
            await session.execute(text("INSERT INTO notes (title) VALUES ('first')"))
            waiting = asyncio.create_task(insert(second, "second"))
            await waits.wait_for_waiter()
            assert not waiting.done()
        await waiting

        with pytest.raises(IntegrityError):  # a rollback ends the turn
            await insert(first, "first")
        await insert(second, "after a rollback")

        async with first() as session:  # an invalidated connection (a cancelled request) ends it
            await session.execute(text("INSERT INTO notes (title) VALUES ('never')"))
            waiting = asyncio.create_task(insert(second, "after an invalidation"))
            await waits.wait_for_waiter()
            await (await session.connection()).invalidate()
        await waiting
        async with first() as session:
            titles = (await session.execute(text("SELECT title FROM notes ORDER BY id"))).scalars().all()
        assert titles == ["first", "second", "after a rollback", "after an invalidation"]
    finally:
        await other.dispose()


async def test_a_writer_waits_at_the_lock_file_only_as_long_as_sqlite_would(
    database: Path, monkeypatch: pytest.MonkeyPatch, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    """A holder that does not let go (its transaction waits on Redis, say) holds the others
    up for the bound only: then they meet SQLite's own lock, and its "busy" (a 503)."""
    _, writer = engines
    await writer.dispose()
    pragmas = tuple(p if "busy_timeout" not in p else "PRAGMA busy_timeout=50" for p in engine_module.SQLITE_PRAGMAS)
    monkeypatch.setattr(engine_module, "SQLITE_PRAGMAS", pragmas)
    monkeypatch.setattr(sqlite_driver, "WRITER_LOCK_WAIT_SECONDS", 0.3)
    other = create_write_engine(create_engine(f"sqlite+aiosqlite:///{database}"))
    first, second = create_sessionmaker(writer, write=True), create_sessionmaker(other, write=True)
    try:
        async with transaction(first) as session:
            await session.execute(text("INSERT INTO notes (title) VALUES ('held')"))
            with pytest.raises(OperationalError, match="locked"):
                async with transaction(second) as waiting:
                    await waiting.execute(text("INSERT INTO notes (title) VALUES ('given up')"))
        async with transaction(second) as session:  # the turn comes once the holder commits
            await session.execute(text("INSERT INTO notes (title) VALUES ('later')"))
        async with first() as session:
            titles = (await session.execute(text("SELECT title FROM notes ORDER BY id"))).scalars().all()
        assert titles == ["held", "later"]
    finally:
        await other.dispose()
