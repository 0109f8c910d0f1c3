"""The records domain's owner-scoped queries: records, the trash, attachments and tags.

Which rows a user reaches is said once, in a fastcrud `PolicyConfig` per model: their own
records, and unless `include_deleted` (sync, purge) only those not deleted; their trash
(deleted, not yet purged); their attachments, and through `of_live_records` only those of a
live record; their tag rows. Every query of these tables outside the write path
(`writer.py`) starts from here. No generated `crud_router` is mounted (docs/decisions.md,
"Records"); records are never deleted by fastcrud, only soft-deleted by the services.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from fastcrud import PolicyConfig
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from common.database.repository import OwnedRepository, OwnerId, reach, scoped_select
from common.records.models import Attachment, Record, RecordTag


def record_policy(owner_id: OwnerId, *, include_deleted: bool = False) -> PolicyConfig:
    """The owner's records (not deleted ones unless `include_deleted`). Edits reach what
    reads reach; a deletion is a soft delete written as an edit, never a DELETE."""
    mine = Record.owner_id == owner_id
    return PolicyConfig(read=mine if include_deleted else mine & Record.is_deleted.is_(False), update=True)


def trash_policy(owner_id: OwnerId) -> PolicyConfig:
    """The owner's trash: records deleted but not yet purged (a purged one is a tombstone)."""
    trashed = Record.is_deleted.is_(True) & Record.purged_at.is_(None)
    return PolicyConfig(read=(Record.owner_id == owner_id) & trashed, update=True)


def attachment_policy(owner_id: OwnerId) -> PolicyConfig:
    return PolicyConfig(read=Attachment.owner_id == owner_id)


def tag_policy(owner_id: OwnerId) -> PolicyConfig:
    return PolicyConfig(read=RecordTag.owner_id == owner_id)


def owned_records(owner_id: OwnerId, *, include_deleted: bool = False) -> Select[Any]:
    """`SELECT records` limited to what `owner_id` reaches (or, given a bound parameter, the
    owner whose id is bound when the statement runs: for statements built once)."""
    return scoped_select(Record, record_policy(owner_id, include_deleted=include_deleted))


class RecordRepository(OwnedRepository[Record]):
    """The owner's live records; with `include_deleted`, their deleted ones and tombstones too."""

    model = Record
    not_found = "no such record"
    order = (Record.occurred_at, Record.id)

    def __init__(self, session: AsyncSession, owner_id: str, *, include_deleted: bool = False) -> None:
        super().__init__(session, owner_id)
        self.include_deleted = include_deleted

    def policy(self) -> PolicyConfig:
        return record_policy(self.owner_id, include_deleted=self.include_deleted)

    async def tag_counts(self, *, limit: int | None = None) -> list[tuple[str, int]]:
        """The owner's tags and how many live records carry each, most used first (then by
        name): tag rows exist for live records only (`writer.py` keeps them)."""
        count = func.count().label("count")
        statement = (
            select(RecordTag.name, count)
            .where(*reach(RecordTag, tag_policy(self.owner_id)))
            .group_by(RecordTag.name)
            .order_by(count.desc(), RecordTag.name)
            .limit(limit)
        )
        return [(name, n) for name, n in (await self.session.execute(statement)).all()]


class TrashRepository(OwnedRepository[Record]):
    """The owner's trash, most recently deleted first."""

    model = Record
    not_found = "no such record in the trash"
    # `deleted_at` is set on every deleted record, so it orders the trash.
    order = (cast(InstrumentedAttribute[datetime], Record.deleted_at), Record.id)

    def policy(self) -> PolicyConfig:
        return trash_policy(self.owner_id)


class AttachmentRepository(OwnedRepository[Attachment]):
    """The owner's attachments; `of_live_records` those a client may reach (an attachment of
    a deleted record comes back with its record)."""

    model = Attachment
    not_found = "no such attachment"
    order = (Attachment.created_at, Attachment.id)

    def policy(self) -> PolicyConfig:
        return attachment_policy(self.owner_id)

    def of_live_records(self) -> Select[Any]:
        return (
            self.statement()
            .join(Record, Record.id == Attachment.record_id)
            .where(*reach(Record, record_policy(self.owner_id)))
        )

    async def live_or_404(self, attachment_id: str) -> Attachment:
        """The owner's attachment of a live record, else `NotFound`."""
        return await self.get_or_404(attachment_id, within=self.of_live_records())

    async def count_on(self, record_id: str) -> int:
        """How many attachments the owner's record holds (fastcrud's count, under the policy)."""
        return await self.crud.count(self.session, record_id=record_id)

    async def is_referenced(self, sha256: str) -> bool:
        """Whether any attachment of the owner's, of any record, refers to the file `sha256`."""
        statement = self.statement().where(Attachment.sha256 == sha256).limit(1)
        return (await self.session.execute(statement.with_only_columns(Attachment.id))).first() is not None
