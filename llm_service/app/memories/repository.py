"""The memories domain's owner-scoped queries.

A user reaches their own memories, and of those only the ones live at the moment asked
about: a short-term memory past its expiry is hidden (the daily job deletes it), except to
`stating`, which finds the memory stating a fact even when expired, so it can be revived.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastcrud import PolicyConfig
from sqlalchemy import BindParameter, ColumnElement, Select, or_
from sqlalchemy.ext.asyncio import AsyncSession

from common.ai.models import Memory
from common.database import utcnow
from common.database.repository import OwnedRepository, OwnerId, scoped_select

Moment = datetime | BindParameter[datetime]


def live_at(now: Moment) -> ColumnElement[bool]:
    return or_(Memory.expires_at.is_(None), Memory.expires_at > now)


def memory_policy(owner_id: OwnerId, now: Moment | None = None) -> PolicyConfig:
    """The owner's memories; given `now`, only those live then."""
    mine = Memory.owner_id == owner_id
    return PolicyConfig(read=mine if now is None else mine & live_at(now), update=True, delete=True)


def owned_memories(owner_id: OwnerId, now: Moment) -> Select[Any]:
    """`SELECT memories` of the owner's live at `now` (either may be a bound parameter, for
    statements built once)."""
    return scoped_select(Memory, memory_policy(owner_id, now))


class MemoryRepository(OwnedRepository[Memory]):
    """The owner's memories live at `now` (default: the current time), most recently changed
    (or reinforced) first."""

    model = Memory
    not_found = "no such memory"
    order = (Memory.updated_at, Memory.id)

    def __init__(self, session: AsyncSession, owner_id: str, *, now: datetime | None = None) -> None:
        super().__init__(session, owner_id)
        self.now = (now or utcnow()).astimezone(UTC)

    def policy(self) -> PolicyConfig:
        return memory_policy(self.owner_id, self.now)

    async def stating(self, key: str, *, for_update: bool = False) -> Memory | None:
        """The owner's memory whose dedupe key is `key`, expired or not; with `for_update`,
        locked and read afresh (a concurrent insert of the same fact is then seen)."""
        statement = scoped_select(Memory, memory_policy(self.owner_id), "update" if for_update else "read")
        statement = statement.where(Memory.content_key == key)
        if for_update:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        memory: Memory | None = (await self.session.execute(statement)).scalar()
        return memory
