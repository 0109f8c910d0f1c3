"""Owner-scoped repositories (`common/database/repository.py`) on SQLite and PostgreSQL: an
owner reaches their own rows through the policy, writes only those the write's rule allows,
ids no row can have are not found without a query, pages are newest first and stable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastcrud import AccessDenied, PolicyConfig
from sqlalchemy import Boolean, String, Table, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from common.database import Base, create_engine, create_sessionmaker
from common.database.repository import OwnedRepository, reach
from common.errors import NotFound

MOMENT = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


class OwnedNote(Base):
    """A table for these tests only (`test_` prefix; never part of a migration)."""

    __tablename__ = "test_repository_notes"

    owner_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(200))
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


def note_policy(owner_id: str) -> PolicyConfig:
    return PolicyConfig(read=OwnedNote.owner_id == owner_id, update=OwnedNote.locked.is_(False), delete=True)


class Notes(OwnedRepository[OwnedNote]):
    model = OwnedNote
    not_found = "no such note"
    order = (OwnedNote.created_at, OwnedNote.id)

    def policy(self) -> PolicyConfig:
        return note_policy(self.owner_id)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    table = OwnedNote.__table__
    assert isinstance(table, Table)
    async with engine.begin() as connection:
        await connection.run_sync(table.create)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session:
        session.add_all(
            [
                OwnedNote(id="a1", owner_id="alice", title="open", created_at=MOMENT),
                OwnedNote(id="a2", owner_id="alice", title="locked", locked=True, created_at=MOMENT),
                OwnedNote(id="b1", owner_id="bob", title="bob's", created_at=MOMENT),
            ]
        )
        await session.commit()
    return sessionmaker


async def titles(sessionmaker: async_sessionmaker[AsyncSession]) -> set[str]:
    async with sessionmaker() as session:
        return set(await session.scalars(select(OwnedNote.title)))


async def test_an_owner_reaches_their_rows_and_nobody_elses(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        alice, bob = Notes(session, "alice"), Notes(session, "bob")
        assert (await alice.get_or_404("a1")).title == "open"
        assert await bob.get("a1") is None
        with pytest.raises(NotFound, match="no such note"):
            await bob.get_or_404("a1")
        assert set(await session.scalars(alice.statement())) == {await alice.get("a1"), await alice.get("a2")}
        assert [note.id for note in await session.scalars(bob.statement())] == ["b1"]
        assert await alice.crud.count(session) == 2  # fastcrud under the same policy


async def test_a_write_reaches_only_what_its_rule_allows(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        alice, bob = Notes(session, "alice"), Notes(session, "bob")
        assert (await alice.get_or_404("a1", for_update=True)).id == "a1"
        assert (await alice.get("a2")) is not None
        assert await alice.get("a2", for_update=True) is None  # `update` leaves locked notes out
        assert (await alice.get_or_404("a2", for_update=True, operation="delete")).id == "a2"
        with pytest.raises(NotFound, match="no such note"):
            await bob.delete_or_404("a1")
        await alice.delete_or_404("a1")
        await session.commit()
    assert await titles(sessionmaker) == {"locked", "bob's"}


async def test_ids_no_row_can_have_are_not_found_without_a_query(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """PostgreSQL refuses a NUL in a parameter (a 500); no id is longer than 36."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    async with sessionmaker() as session:
        notes = Notes(session, "alice")
        for odd in ("a\x00b", "x" * 37):
            assert await notes.get(odd) is None
            with pytest.raises(NotFound, match="no such note"):
                await notes.get_or_404(odd, for_update=True)
            with pytest.raises(NotFound, match="no such note"):
                await notes.delete_or_404(odd)
    event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert statements == []


def test_an_operation_the_policy_denies_is_refused() -> None:
    read_only = PolicyConfig(read=OwnedNote.owner_id == "alice")
    with pytest.raises(AccessDenied):
        reach(OwnedNote, read_only, "delete")
    # A write reaches the rows its own rule and `read` both reach.
    conditions = reach(OwnedNote, note_policy("alice"), "update")
    assert [str(c) for c in conditions] == [
        "test_repository_notes.owner_id = :owner_id_1",
        "test_repository_notes.locked IS false",
    ]


async def test_pages_are_newest_first_and_stable_under_ties(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        session.add_all(OwnedNote(id=f"a{n}", owner_id="alice", title=str(n), created_at=MOMENT) for n in range(3, 8))
        await session.commit()
        notes, seen, cursor = Notes(session, "alice"), [], None
        while True:
            page, cursor = await notes.page(limit=2, cursor=cursor)
            seen += [note.id for note in page]
            if cursor is None:
                break
    assert seen == ["a7", "a6", "a5", "a4", "a3", "a2", "a1"]
