"""The database layer on SQLite and PostgreSQL: UUIDv7 ids, aware timestamps, transactions."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from sqlalchemy import String, Table, select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from common.app import create_service_app
from common.database import Base, TimestampMixin, create_engine, create_sessionmaker, transaction
from common.deps import SessionDep
from common.errors import Conflict
from tests.support import app_client

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


class Note(TimestampMixin, Base):
    """A table for these tests only (`test_` prefix; never part of a migration)."""

    __tablename__ = "test_database_notes"

    title: Mapped[str] = mapped_column(String(200))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    table = Note.__table__
    assert isinstance(table, Table)  # a declarative class's table; typed as any FromClause
    async with engine.begin() as connection:
        await connection.run_sync(table.create)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


async def stored_titles(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Note.title).order_by(Note.title)))


async def reread(sessionmaker: async_sessionmaker[AsyncSession], note_id: str) -> Note:
    async with sessionmaker() as session:
        note = await session.get(Note, note_id)
        assert note is not None
        return note


def assert_utc(moment: datetime) -> None:
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0), moment


async def test_ids_are_time_ordered_uuid7(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    before_ms = time.time_ns() // 1_000_000
    notes = []
    async with transaction(sessionmaker) as session:
        for n in range(200):
            note = Note(title=f"note {n}")
            session.add(note)
            await session.flush()  # one insert at a time, as requests would make them
            notes.append(note)
    after_ms = time.time_ns() // 1_000_000
    ids = [note.id for note in notes]
    parsed = [uuid.UUID(value) for value in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [str(u) for u in parsed] == ids  # canonical lowercase form
    assert all(before_ms <= u.int >> 80 <= after_ms for u in parsed)  # the embedded timestamp
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    async with sessionmaker() as session:
        assert list(await session.scalars(select(Note.id).order_by(Note.id))) == ids


async def test_client_supplied_id_is_kept(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessionmaker) as session:
        session.add(Note(id="client-chosen-id", title="mine"))
    assert (await reread(sessionmaker, "client-chosen-id")).title == "mine"


async def test_timestamps_are_utc_aware_also_when_read_again(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    beijing = timezone(timedelta(hours=8))
    async with transaction(sessionmaker) as session:
        fresh = Note(title="now")
        given = Note(title="given", created_at=datetime(2024, 5, 1, 8, 30, tzinfo=beijing))
        session.add_all([fresh, given])
    assert_utc(fresh.created_at)
    assert_utc(fresh.updated_at)
    again = await reread(sessionmaker, fresh.id)  # a new session: SQLite kept no zone
    assert_utc(again.created_at)
    assert_utc(again.updated_at)
    assert again.created_at == fresh.created_at
    stored = (await reread(sessionmaker, given.id)).created_at
    assert_utc(stored)
    assert stored == datetime(2024, 5, 1, 0, 30, tzinfo=UTC)


async def test_updated_at_moves_on_update(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessionmaker) as session:
        note = Note(title="draft", created_at=LONG_AGO, updated_at=LONG_AGO)
        session.add(note)
    async with transaction(sessionmaker) as session:
        loaded = await session.get(Note, note.id)
        assert loaded is not None
        loaded.title = "final"
    changed = await reread(sessionmaker, note.id)
    assert changed.title == "final"
    assert changed.created_at == LONG_AGO
    assert changed.updated_at > LONG_AGO
    assert_utc(changed.updated_at)


async def test_naive_datetimes_are_refused(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with transaction(sessionmaker) as session:
            session.add(Note(title="naive", created_at=datetime(2024, 1, 1, 12, 0)))
    assert await stored_titles(sessionmaker) == []


async def test_transaction_commits_on_success_and_rolls_back_on_error(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with transaction(sessionmaker) as session:
        session.add(Note(title="kept"))
    with pytest.raises(RuntimeError, match="half way"):
        async with transaction(sessionmaker) as session:
            session.add(Note(title="lost"))
            await session.flush()  # the row reached the database inside the transaction
            raise RuntimeError("failed half way")
    assert await stored_titles(sessionmaker) == ["kept"]


def notes_router() -> APIRouter:
    router = APIRouter()

    @router.post("/test/notes", status_code=201)
    async def create_note(session: SessionDep, outcome: str = "ok") -> dict[str, str]:
        note = Note(title=f"via request ({outcome})")
        session.add(note)
        await session.flush()
        if outcome == "conflict":
            raise Conflict("refused after the insert")
        if outcome == "crash":
            raise RuntimeError("crashed after the insert")
        return {"id": note.id}

    return router


async def test_session_dependency_commits_or_rolls_back(
    make_settings: Callable[..., Any], database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    app = create_service_app("test_service", make_settings(database_url=database_url), routers=[notes_router()])
    async with app_client(app) as client:
        assert (await client.post("/test/notes", params={"outcome": "conflict"})).status_code == 409
        assert (await client.post("/test/notes", params={"outcome": "crash"})).status_code == 500
        created = await client.post("/test/notes")
        assert created.status_code == 201
        # Committed before the response was sent: visible to another connection right away.
        assert (await reread(sessionmaker, created.json()["id"])).title == "via request (ok)"
    assert await stored_titles(sessionmaker) == ["via request (ok)"]


async def test_sqlite_pragmas_on_every_connection(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'jilu.db'}")
    expected = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000, "synchronous": 1}
    try:
        async with engine.connect() as first, engine.connect() as second:  # two pooled connections
            for connection in (first, second):
                seen = {name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar() for name in expected}
                assert seen == expected
    finally:
        await engine.dispose()
