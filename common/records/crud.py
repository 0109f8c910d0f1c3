"""Data access for records, always through an owner's policy.

`record_policy` / `attachment_policy` (fastcrud `PolicyConfig`) are the one place that says
which rows a user reaches: the owner's own, and for records only those not deleted. Where
fastcrud's API fits (counts, existence) the code calls a `FastCRUD(...).with_policy(...)`
instance; the routes that need ORM entities (relationships, versions, `FOR UPDATE`) build
their query with the same policy's WHERE (`conditions_in_reach`), so the two never disagree.
No generated `crud_router` is mounted: cursor pages, versions and idempotent creates are
beyond what it gives (docs/records.md).
"""

from __future__ import annotations

from typing import Any

from fastcrud import FastCRUD, PolicyConfig
from fastcrud.crud.policy_enforcement import conditions_in_reach
from sqlalchemy import BindParameter, Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from common.records.models import Attachment, Record, RecordTag, SyncCounter

record_crud: FastCRUD = FastCRUD(Record)
attachment_crud: FastCRUD = FastCRUD(Attachment)
record_tag_crud: FastCRUD = FastCRUD(RecordTag)

# Columns no client ever sees or writes through a generic route.
HIDDEN_COLUMNS = ["owner_id", "device_id", "push_fingerprint", "purged_at", "deleted_at"]
# Columns only the server writes.
READ_ONLY_COLUMNS = [
    "version",
    "change_seq",
    "is_deleted",
    "share_slug",
    "ai_status",
    "ai_title",
    "ai_summary",
    "ai_tags",
    "ai_error",
    "created_at",
    "updated_at",
]


def record_policy(owner_id: str | BindParameter[str], *, include_deleted: bool = False) -> PolicyConfig:
    mine = Record.owner_id == owner_id
    reach = mine if include_deleted else mine & Record.is_deleted.is_(False)
    return PolicyConfig(
        read=reach,
        create=True,
        create_check=mine,
        update=reach,
        delete=False,  # deletion is a soft delete the service writes as an update
        hidden_columns=frozenset(HIDDEN_COLUMNS),
        read_only_columns=frozenset(READ_ONLY_COLUMNS),
    )


def attachment_policy(owner_id: str) -> PolicyConfig:
    mine = Attachment.owner_id == owner_id
    return PolicyConfig(read=mine, create=True, create_check=mine, update=False, delete=mine)


def owned_records(owner_id: str | BindParameter[str], *, include_deleted: bool = False) -> Select[Any]:
    """`SELECT records` limited to what `owner_id` reaches (or, given a bound parameter, the
    owner whose id is bound when the statement runs)."""
    policy = record_policy(owner_id, include_deleted=include_deleted)
    return select(Record).where(*conditions_in_reach(policy, Record, "read"))


async def get_owned(
    session: AsyncSession, owner_id: str, record_id: str, *, include_deleted: bool = False, for_update: bool = False
) -> Record | None:
    statement = owned_records(owner_id, include_deleted=include_deleted).where(Record.id == record_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar()


def trashed_records(owner_id: str) -> Select[Any]:
    """The owner's trash: records deleted but not yet purged (a purged one is only a tombstone)."""
    return owned_records(owner_id, include_deleted=True).where(Record.is_deleted.is_(True), Record.purged_at.is_(None))


async def get_trashed(
    session: AsyncSession, owner_id: str, record_id: str, *, for_update: bool = False
) -> Record | None:
    statement = trashed_records(owner_id).where(Record.id == record_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar()


def scoped_attachments(owner_id: str) -> FastCRUD:
    """The attachment FastCRUD limited to `owner_id`'s rows."""
    return attachment_crud.with_policy(attachment_policy(owner_id))


def owned_attachments(owner_id: str) -> Select[Any]:
    return select(Attachment).where(*conditions_in_reach(attachment_policy(owner_id), Attachment, "read"))


async def next_change_seq(session: AsyncSession, owner_id: str) -> int:
    """The owner's next change number. The counter row stays locked until the transaction
    ends (PostgreSQL row lock; SQLite's write lock), so numbers are handed out in commit
    order and a reader never skips a change that commits late."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(SyncCounter)
        .values(id=owner_id, seq=1)
        .on_conflict_do_update(index_elements=[SyncCounter.id], set_={"seq": SyncCounter.seq + 1})
        .returning(SyncCounter.seq)
    )
    return int((await session.execute(statement)).scalar_one())
