"""Attachments: add a received file to a record, find one to download, take one away, and
delete the files no attachment refers to any more.

A file is shared by every attachment of one owner with the same sha256. Whether it is
still referred to is decided in a transaction holding that content's lock, the same lock
an upload holds from placing the file until its row commits, so a file is never deleted
under an upload that is about to refer to it:
- PostgreSQL: a transaction-scoped advisory lock on (owner, sha256);
- SQLite: the database write lock, which every write transaction takes up front
  (`BEGIN IMMEDIATE`, see `common.database.engine`); pass the *write* sessionmaker.
Files are only deleted after the rows that referred to them are gone for good (committed),
so a rolled-back deletion never loses a file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import anyio.to_thread
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.database.session import transaction
from common.errors import Conflict, NotFound, ServiceUnavailable
from common.records import extraction
from common.records.attachments.links import NOT_VALID
from common.records.attachments.staging import StagedFile
from common.records.attachments.storage import AttachmentStorage
from common.records.attachments.thumbnails import make_thumbnail
from common.records.models import Attachment, Record
from common.records.repository import AttachmentRepository, RecordRepository
from common.records.writer import RecordWriter
from common.security.auth import account_standing

MAX_ATTACHMENTS_PER_RECORD = 50


async def lock_content(session: AsyncSession, owner_id: str, sha256: str) -> None:
    """Hold (owner, sha256)'s lock until the transaction ends (see the module docstring)."""
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: the write transaction already holds the database's write lock
    digest = hashlib.sha256(f"attachment:{owner_id}:{sha256}".encode()).digest()
    await session.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest[:8], "big", signed=True))))


async def ensure_record(sessionmaker: async_sessionmaker[AsyncSession], owner_id: str, record_id: str) -> None:
    """404 unless `record_id` is the owner's live record: checked before an upload is
    received (and again when it is attached), without opening a write transaction."""
    async with sessionmaker() as session:
        await RecordRepository(session, owner_id).get_or_404(record_id)


async def add_thumbnail(storage: AttachmentStorage, staged: StagedFile) -> None:
    """Make the staged file's thumbnail, when it is an image we can read, beside it in tmp/."""
    target = staged.path.with_name(staged.path.name + ".thumb.jpg")
    if await make_thumbnail(staged.content_type, staged.path, target):
        staged.thumbnail = target


def _place(storage: AttachmentStorage, owner_id: str, staged: StagedFile) -> None:
    if staged.thumbnail is not None:
        storage.place(staged.thumbnail, storage.thumbnail_path(owner_id, staged.sha256))
    storage.place(staged.path, storage.path(owner_id, staged.sha256))


async def attach(
    session: AsyncSession,
    redis: Redis,
    storage: AttachmentStorage,
    owner_id: str,
    record_id: str,
    staged: StagedFile,
    *,
    device_id: str | None = None,
) -> tuple[Attachment, Record]:
    """Add `staged` to the owner's live record: a new version of the record, announced like
    any edit. The file moves into place last, under the content lock, once everything
    else in the transaction has succeeded. Returns the attachment and its record."""
    record = await RecordRepository(session, owner_id).get_or_404(record_id, for_update=True)
    if await AttachmentRepository(session, owner_id).count_on(record.id) >= MAX_ATTACHMENTS_PER_RECORD:
        raise Conflict(f"a record holds at most {MAX_ATTACHMENTS_PER_RECORD} attachments")
    await lock_content(session, owner_id, staged.sha256)
    attachment = Attachment(
        owner_id=owner_id,
        record_id=record.id,
        filename=staged.filename,
        content_type=staged.content_type,
        size=staged.size,
        sha256=staged.sha256,
        has_thumbnail=staged.thumbnail is not None,
        created_at=datetime.now(UTC),
    )
    record.attachments.append(attachment)
    await extraction.attachment_added(redis, attachment)
    await RecordWriter(session, redis).touch(record, "updated", device_id=device_id)
    await anyio.to_thread.run_sync(_place, storage, owner_id, staged)
    return attachment, record


async def file_to_send(
    session: AsyncSession, storage: AttachmentStorage, owner_id: str, attachment_id: str, *, thumbnail: bool = False
) -> tuple[Attachment, Path]:
    """The owner's attachment of a live record and the path of its file (or thumbnail)."""
    attachment = await AttachmentRepository(session, owner_id).live_or_404(attachment_id)
    if thumbnail and not attachment.has_thumbnail:
        raise NotFound("this attachment has no thumbnail")
    path = (storage.thumbnail_path if thumbnail else storage.path)(owner_id, attachment.sha256)
    if not await anyio.Path(path).is_file():
        raise NotFound("the file of this attachment is missing")
    return attachment, path


async def file_for_link(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    storage: AttachmentStorage,
    owner_id: str,
    attachment_id: str,
    *,
    thumbnail: bool,
) -> tuple[Attachment, Path]:
    """What a signed URL names, its signature already checked: as `file_to_send`, and refused
    (the one 404 of an invalid link) while the owner's account is deactivated, the same
    standing (Redis, else the database) that refuses their tokens."""
    try:
        standing = await account_standing(redis, sessionmaker, owner_id)
    except RedisError as exc:
        raise ServiceUnavailable("files by link are unavailable; try again shortly") from exc
    if standing is None or not standing.is_active:
        raise NotFound(NOT_VALID)
    try:
        return await file_to_send(session, storage, owner_id, attachment_id, thumbnail=thumbnail)
    except NotFound:
        raise NotFound(NOT_VALID) from None


@lru_cache(maxsize=1024)
def _digest(path: Path, modified_ns: int, size: int) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


async def variant_sha256(attachment: Attachment, path: Path, *, thumbnail: bool) -> str:
    """The sha256 of what is sent: the upload's is stored; a thumbnail's is computed (small
    files) and remembered while the file is unchanged."""
    if not thumbnail:
        return attachment.sha256
    stat = await anyio.Path(path).stat()
    return await anyio.to_thread.run_sync(_digest, path, stat.st_mtime_ns, stat.st_size)


async def remove(
    session: AsyncSession,
    redis: Redis,
    owner_id: str,
    attachment_id: str,
    *,
    device_id: str | None = None,
) -> str:
    """Take an attachment off its record (a new version of the record). Returns its sha256:
    once this transaction has committed, pass it to `collect_unreferenced`."""
    attachment = await AttachmentRepository(session, owner_id).live_or_404(attachment_id)
    record = await RecordRepository(session, owner_id).get(attachment.record_id, for_update=True)
    if record is None:
        raise NotFound("no such attachment")
    record.attachments.remove(attachment)  # delete-orphan: the row goes at the flush
    await RecordWriter(session, redis).touch(record, "updated", device_id=device_id)
    return attachment.sha256


async def collect_unreferenced(
    write_sessionmaker: async_sessionmaker[AsyncSession], storage: AttachmentStorage, owner_id: str, shas: Iterable[str]
) -> int:
    """Delete the files of `shas` that no attachment of the owner refers to any more; call it
    after the transaction that deleted the rows has committed. Returns how many went."""
    removed = 0
    for sha256 in sorted(set(shas)):
        async with transaction(write_sessionmaker) as session:
            await lock_content(session, owner_id, sha256)
            if not await AttachmentRepository(session, owner_id).is_referenced(sha256):
                await anyio.to_thread.run_sync(storage.remove, owner_id, sha256)
                removed += 1
    return removed
