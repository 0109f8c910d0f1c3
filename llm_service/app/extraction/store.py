"""The extraction state in the database, as the workers move it: claim a target
(`pending` → `running`), store what an engine read (→ `done` or `skipped`), or the failure
after the last attempt (→ `failed`). A record's bookkeeping after a finished extraction (a
change number, the search index, a new analysis, the event) goes through `RecordWriter`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select

from common.database import Sessions, transaction
from common.records.attachments.service import add_thumbnail, attach
from common.records.attachments.staging import stage_bytes
from common.records.attachments.storage import AttachmentStorage
from common.records.extraction import Target, link_url
from common.records.models import Attachment, Record
from common.records.search import segment_for_index
from common.records.writer import AI_TEXT_LIMIT, RecordWriter
from llm_service.app.extraction.results import Extracted

# The longest text kept of one extraction (a book-sized PDF is not a note).
MAX_TEXT_CHARS = 200_000


@dataclass(frozen=True)
class Claimed:
    """What a worker needs to read a target it claimed: never more than the target's row."""

    target: Target
    id: str
    owner_id: str
    record_id: str
    ai_opt_out: bool
    content_type: str = ""
    sha256: str = ""
    filename: str | None = None
    url: str | None = None  # a link record's


class Claim(Enum):
    NOT_YET = "not_yet"  # the row is not there (its write has not committed yet)
    NOTHING = "nothing"  # nothing to do: done already, re-requested, deleted, another worker's


async def claim(
    sessions: Sessions, redis: Redis, target: Target, target_id: str, *, reclaimed: bool
) -> Claimed | Claim:
    """Mark the target `running` and say what to read, if its extraction is owed: `pending`,
    or `running` when this job was reclaimed from a worker that died (`reclaimed`)."""
    async with transaction(sessions.write) as session:
        if target == "attachment":
            found = await session.execute(
                select(Attachment, Record.ai_opt_out, Record.is_deleted)
                .join(Record, Record.id == Attachment.record_id)
                .where(Attachment.id == target_id)
                .with_for_update(of=Attachment)
            )
            first = found.first()
            if first is None:
                return Claim.NOT_YET
            attachment, ai_opt_out, is_deleted = first
            if is_deleted or not _owed(attachment.extraction_status, reclaimed):
                return Claim.NOTHING
            attachment.extraction_status = "running"
            return Claimed(
                "attachment",
                attachment.id,
                attachment.owner_id,
                attachment.record_id,
                ai_opt_out,
                attachment.content_type,
                attachment.sha256,
                attachment.filename,
            )
        record = await session.scalar(select(Record).where(Record.id == target_id).with_for_update())
        if record is None:
            return Claim.NOT_YET
        if record.is_deleted or not _owed(record.extraction_status, reclaimed):
            return Claim.NOTHING
        url = (record.extraction_details or {}).get("url")
        if not url or link_url(record) != url:
            return Claim.NOTHING
        await RecordWriter(session, redis).mark_link_running(record)
        return Claimed("record", record.id, record.owner_id, record.id, record.ai_opt_out, url=url)


def _owed(status: str | None, reclaimed: bool) -> bool:
    return status == "pending" or (status == "running" and reclaimed)


async def finish(sessions: Sessions, redis: Redis, claimed: Claimed, result: Extracted) -> bool:
    """Store what the engine read; then the record is re-indexed, re-analysed and announced
    (`RecordWriter.extraction_finished`). False when the target was re-requested, edited
    away or deleted meanwhile: what was read is dropped (a newer job reads it again)."""
    text = result.text[:MAX_TEXT_CHARS]
    index = await asyncio.to_thread(segment_for_index, text) if text else ""
    values: dict[str, Any] = {
        "extraction_status": result.status,
        "extraction_engine": result.engine[:64],
        "extraction_error": result.reason[:AI_TEXT_LIMIT] if result.reason else None,
        "extraction_details": {**result.details, **({"url": claimed.url} if claimed.url else {})},
        "extracted_text": text,
        "extracted_index": index,
    }
    return await _store(sessions, redis, claimed, values)


async def fail(sessions: Sessions, redis: Redis, claimed: Claimed, reason: str) -> bool:
    """After the last attempt: `failed`, with a short reason clients may show."""
    values: dict[str, Any] = {
        "extraction_status": "failed",
        "extraction_error": reason[:AI_TEXT_LIMIT],
        "extraction_details": {"url": claimed.url} if claimed.url else {},
        "extracted_text": "",
        "extracted_index": "",
    }
    return await _store(sessions, redis, claimed, values)


async def _store(sessions: Sessions, redis: Redis, claimed: Claimed, values: dict[str, Any]) -> bool:
    async with transaction(sessions.write) as session:
        writer = RecordWriter(session, redis)
        # The record's row first, as every writer of a record locks it (then the attachment).
        record = await session.scalar(select(Record).where(Record.id == claimed.record_id).with_for_update())
        if record is None:
            return False
        if claimed.target == "record":
            if not await writer.extraction_finished(record, link=values):
                await session.rollback()
                return False
            return True
        attachment = await session.scalar(select(Attachment).where(Attachment.id == claimed.id).with_for_update())
        if attachment is None or attachment.extraction_status != "running":
            return False  # deleted, or asked for again while this one ran
        for column, value in values.items():
            setattr(attachment, column, value)
        if not await writer.extraction_finished(record):
            await session.rollback()
            return False
        return True


PREVIEW_FILENAME = "preview"


async def attach_preview(
    sessions: Sessions, redis: Redis, storage: AttachmentStorage, claimed: Claimed, data: bytes
) -> None:
    """Attach a link page's preview image to its record (a new version, as any upload makes),
    once: the record's extraction remembers the attachment. Staged, typed and thumbnailed as
    an upload is; a record that moved on or already has its preview is left alone."""
    staged = await asyncio.to_thread(stage_bytes, storage, data, PREVIEW_FILENAME)
    try:
        await add_thumbnail(storage, staged)
        async with transaction(sessions.write) as session:
            record = await session.scalar(select(Record).where(Record.id == claimed.id).with_for_update())
            details = dict(record.extraction_details or {}) if record is not None else {}
            if record is None or details.get("url") != claimed.url or "preview_attachment_id" in details:
                return
            attachment, _ = await attach(session, redis, storage, claimed.owner_id, claimed.id, staged)
            await RecordWriter(session, redis).link_details(record, {**details, "preview_attachment_id": attachment.id})
    finally:
        staged.discard()
