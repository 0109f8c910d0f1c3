"""Records: create, read, list, edit with versions, delete and restore; tags. Every change
is written through `writer.RecordWriter` (version, change sequence, tags, search index,
event), in the caller's transaction."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.database.repository import reach
from common.errors import Conflict, PreconditionRequired, VersionConflict
from common.pagination import encode_cursor, keyset_params, keyset_statement
from common.records import search
from common.records.attachments.links import AttachmentLinks
from common.records.models import Attachment, Record
from common.records.repository import RecordRepository, TrashRepository, attachment_policy, owned_records
from common.records.schemas import RecordCreate, RecordUpdate, TagCount
from common.records.views import (
    LISTED_ATTACHMENT_COLUMNS,
    LISTED_ID,
    LISTED_OCCURRED_AT,
    LISTED_RECORD_COLUMNS,
    ListedRecord,
    record_public,
)
from common.records.writer import RecordWriter

CONTENT_FIELDS = ("kind", "title", "content", "tags", "occurred_at")
# What analysis reads: a change to any of these owes the record a new analysis.
ANALYSED_FIELDS = (*CONTENT_FIELDS, "ai_opt_out")


async def get(session: AsyncSession, owner_id: str, record_id: str) -> Record:
    return await RecordRepository(session, owner_id).get_or_404(record_id)


async def create(
    session: AsyncSession, redis: Redis, owner_id: str, data: RecordCreate, *, device_id: str | None = None
) -> tuple[Record, bool]:
    """Create a record; with a client-made id already used by this user, return that one
    (idempotent retry). Returns the record and whether it was created now."""
    # Segmenting is CPU work: done before the first statement takes SQLite's write lock.
    await search.segmenter_ready()
    prepared = search.index_text(data.title, data.content, data.tags)
    if data.id is not None:
        existing = await _existing_for_retry(session, owner_id, data.id)
        if existing is not None:
            return existing, False
    values: dict[str, Any] = data.model_dump(exclude={"id", "occurred_at"}, exclude_none=True)
    now = datetime.now(UTC)
    record = Record(
        **values,
        owner_id=owner_id,
        occurred_at=data.occurred_at or now,
        created_at=now,
        updated_at=now,
        attachments=[],  # a new record has none; saying so spares a lazy load
    )
    if data.id is not None:
        record.id = data.id
    try:
        await RecordWriter(session, redis).insert(record, device_id=device_id, prepared=prepared)
    except IntegrityError:
        # The same id was created concurrently: answer like a retry, or refuse if not ours.
        existing = await _existing_for_retry(session, owner_id, data.id or "")
        if existing is None:
            raise
        return existing, False
    return record, True


async def _existing_for_retry(session: AsyncSession, owner_id: str, record_id: str) -> Record | None:
    taken = await session.get(Record, record_id)
    if taken is None:
        return None
    if taken.owner_id != owner_id:
        # Reveal nothing about the other record, not even that it is someone else's.
        raise Conflict("that id cannot be used; make a new one")
    if taken.is_deleted:
        raise Conflict("a record with that id was deleted; make a new id")
    return taken


def parse_if_match(header: str | None) -> int | None:
    """`If-Match: "3"`, `W/"3"` or `3` → 3."""
    if header is None:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise PreconditionRequired('If-Match must carry the record\'s version, e.g. "3"')
    return int(value)


def check_version(
    record: Record, expected: int | None, *, links: AttachmentLinks | None, required: bool = True
) -> None:
    """Raise unless `expected` is the record's version; a conflict carries the `current`
    record, its attachment URLs made by `links`."""
    if expected is None:
        if required:
            raise PreconditionRequired("say which version you edited: If-Match header or `version` field")
        return
    if expected != record.version:
        raise VersionConflict(
            f"the record is at version {record.version}, not {expected}",
            current=record_public(record, links).model_dump(mode="json"),
        )


async def update(
    session: AsyncSession,
    redis: Redis,
    owner_id: str,
    record_id: str,
    changes: RecordUpdate,
    *,
    links: AttachmentLinks | None,
    if_match: int | None = None,
    device_id: str | None = None,
) -> Record:
    record = await RecordRepository(session, owner_id).get_or_404(record_id, for_update=True)
    check_version(record, if_match if if_match is not None else changes.version, links=links)
    values = changes.model_dump(exclude_unset=True, exclude={"version"})
    for field in ("kind", "content", "tags", "occurred_at", "ai_opt_out"):
        if field in values and values[field] is None:
            values.pop(field)  # null means "leave it"; only the title may be cleared
    changed = apply_changes(record, values)
    if changed:
        reanalyse = any(field in changed for field in ANALYSED_FIELDS)
        await RecordWriter(session, redis).touch(record, "updated", device_id=device_id, reanalyse=reanalyse)
    return record


def apply_changes(record: Record, values: dict[str, Any]) -> set[str]:
    """Write `values` onto `record`; returns the fields that really changed (the caller then
    `touch`es the record when any did)."""
    changed = {k: v for k, v in values.items() if getattr(record, k) != v}
    for field, value in changed.items():
        setattr(record, field, value)
    return set(changed)


async def soft_delete(
    session: AsyncSession,
    redis: Redis,
    owner_id: str,
    record_id: str,
    *,
    links: AttachmentLinks | None,
    if_match: int | None = None,
) -> Record:
    record = await RecordRepository(session, owner_id).get_or_404(record_id, for_update=True)
    check_version(record, if_match, links=links, required=False)
    mark_deleted(record)
    # The device of the last edit stays: a deletion does not say which device made it.
    await RecordWriter(session, redis).touch(record, "deleted", device_id=record.device_id)
    return record


def mark_deleted(record: Record) -> None:
    record.is_deleted = True
    record.deleted_at = datetime.now(UTC)
    record.share_slug = None  # a share link dies with its record


async def restore(
    session: AsyncSession, redis: Redis, owner_id: str, record_id: str, *, device_id: str | None = None
) -> Record:
    """Take a record out of the trash: live again as it was deleted (attachments included; a
    share link stays revoked), at a new version, announced as `updated`. Only a record in
    the caller's trash: a live, purged, unknown or someone else's record is 404."""
    record = await TrashRepository(session, owner_id).get_or_404(record_id, for_update=True)
    record.is_deleted = False
    record.deleted_at = None
    # The current version is not one a sync push made: a retried push that deleted it must
    # come back as a conflict, not as `applied`.
    record.push_fingerprint = None
    # An analysis the deletion cut short (a running one never stores onto a deleted record)
    # is owed again; a finished or skipped one stands.
    reanalyse = record.ai_status == "running"
    await RecordWriter(session, redis).touch(record, "updated", device_id=device_id, reanalyse=reanalyse)
    return record


@functools.lru_cache(maxsize=64)
def _list_statement(filters: search.FilterShape, *, after_cursor: bool) -> Select[Any]:
    """The record list's statement for one filter shape, built once: the owner, the filters'
    values, the page size and the cursor are bound parameters."""
    chosen = owned_records(bindparam("owner_id")).with_only_columns(*LISTED_RECORD_COLUMNS)
    chosen = chosen.where(*search.filter_conditions(filters))
    page = keyset_statement(chosen, Record.occurred_at, Record.id, after_cursor=after_cursor).subquery("page")
    attached = and_(Attachment.record_id == page.c.id, *reach(Attachment, attachment_policy(bindparam("owner_id"))))
    return (
        select(page, *LISTED_ATTACHMENT_COLUMNS)
        .outerjoin(Attachment, attached)
        .order_by(page.c.occurred_at.desc(), page.c.id.desc(), Attachment.id)
    )


async def list_page(
    session: AsyncSession,
    owner_id: str,
    *,
    limit: int,
    cursor: str | None,
    filters: search.SearchFilters,
) -> tuple[list[ListedRecord], str | None]:
    """One page of the owner's live records, newest `occurred_at` first, as rows
    (`views.LISTED_RECORD_COLUMNS`, each with its attachments' `LISTED_ATTACHMENT_COLUMNS`,
    by id), and the next page's cursor.

    One statement (`_list_statement`): the page of records (a limited subquery) left-joined
    to their attachments, so the list costs one round trip to the database and no ORM objects
    (issue 11: each statement is a few hops to aiosqlite's thread; identity-map work was a
    third of the list's time)."""
    params = {"owner_id": owner_id, **filters.params, **keyset_params(limit=limit, cursor=cursor)}
    # Through the session's connection: the rows come back as rows, with no ORM loading.
    connection = await session.connection()
    rows = await connection.execute(_list_statement(filters.shape, after_cursor=bool(cursor)), params)
    width = len(LISTED_RECORD_COLUMNS)
    listed: list[ListedRecord] = []
    for row in rows:
        values = tuple(row)
        if not listed or listed[-1][0][LISTED_ID] != values[LISTED_ID]:
            listed.append((values[:width], []))
        if values[width] is not None:  # an attachment (none: the outer join's empty side)
            listed[-1][1].append(values[width:])
    if len(listed) <= limit:
        return listed, None
    last = listed[limit - 1][0]
    return listed[:limit], encode_cursor(last[LISTED_OCCURRED_AT], last[LISTED_ID])


async def trash_page(
    session: AsyncSession, owner_id: str, *, limit: int, cursor: str | None
) -> tuple[list[Record], str | None]:
    """One page of the owner's trash, most recently deleted first."""
    return await TrashRepository(session, owner_id).page(limit=limit, cursor=cursor)


async def tag_counts(session: AsyncSession, owner_id: str, *, limit: int | None = None) -> list[TagCount]:
    """The owner's tags with how many live records carry each, most used first (then by
    name); the first `limit` of them when given."""
    counts = await RecordRepository(session, owner_id).tag_counts(limit=limit)
    return [TagCount(name=name, count=n) for name, n in counts]
