"""A burst of writers is queued in the process, not failed: SQLite lets one transaction write
at a time, and a service's writers take turns at its one write connection
(`common.database.engine.create_write_engine`) rather than in SQLite's busy handler, where a
burst used to run out of busy_timeout and get 503s."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from common.database import engine as engine_module
from common.deps import service_state
from common.records.models import Record
from tests.records.conftest import RECORDS, Account, RecordsStack

WRITERS = 32


@pytest.fixture
def no_busy_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite refuses a second writer at once instead of retrying it for 5 s: two writers of
    the process at the same time would be a 503 at once. (Asked for before the stack, whose
    connections are made after it.)"""
    pragmas = tuple(
        "PRAGMA busy_timeout=0" if pragma.startswith("PRAGMA busy_timeout") else pragma
        for pragma in engine_module.SQLITE_PRAGMAS
    )
    monkeypatch.setattr(engine_module, "SQLITE_PRAGMAS", pragmas)


async def test_a_burst_of_creates_all_succeed_with_distinct_change_numbers(
    no_busy_wait: None, records_stack: RecordsStack, records_owner: Account
) -> None:
    mobile = service_state(records_stack.apps["mobile"])
    async with mobile.write_sessionmaker() as session:
        if session.get_bind().dialect.name == "sqlite":
            assert (await session.execute(text("PRAGMA busy_timeout"))).scalar() == 0

    async def create(n: int) -> int:
        body = {"content": f"written in a burst, {n}", "tags": ["burst"]}
        response = await records_stack.mobile.post(RECORDS, json=body, headers=records_owner.headers)
        return response.status_code

    statuses = await asyncio.gather(*(create(n) for n in range(WRITERS)))

    assert statuses == [201] * WRITERS
    async with records_stack.sessionmaker() as session:
        numbers = (await session.scalars(select(Record.change_seq).where(Record.owner_id == records_owner.id))).all()
    assert sorted(numbers) == list(range(1, WRITERS + 1))  # distinct, and none skipped
    assert len(await records_stack.events()) == WRITERS
