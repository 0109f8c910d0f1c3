"""Holding a live event back until its change is visible in the database.

Record events are added to the Redis stream inside the writing transaction, just before its
commit (so that no acknowledged change goes unannounced). A browser that fetches the record
the moment the event arrives could therefore still miss it. Each live event is sent once
the record shows at least the event's version, or after `COMMIT_WAIT_SECONDS` (a rolled-back
write, a purged record) all the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.records.models import Record
from web_service.app.events.entries import RecordEvent

COMMIT_WAIT_SECONDS = 2.0
POLL_SECONDS = 0.02

WaitForCommit = Callable[[RecordEvent], Awaitable[None]]


def commit_waiter(sessionmaker: async_sessionmaker[AsyncSession]) -> WaitForCommit:
    async def wait(event: RecordEvent) -> None:
        if event.type == "analyzed":  # published after its commit
            return
        statement = select(Record.version).where(Record.id == event.record_id, Record.owner_id == event.owner_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COMMIT_WAIT_SECONDS
        while loop.time() < deadline:
            async with sessionmaker() as session:
                version = await session.scalar(statement)
            if version is not None and version >= event.version:
                return
            await asyncio.sleep(POLL_SECONDS)

    return wait
