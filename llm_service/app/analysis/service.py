"""One analysis job: read the record, ask its owner's provider, write title, summary, tags.

Results are written only onto the version they were made from (an edit in between brings
its own event), they bump the record's change number so synced devices receive them and
publish an `analyzed` record event so open browsers do, and they never bump its version (a
device's pending edit stays valid).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.database import Sessions, transaction
from common.errors import ServiceUnavailable
from common.records.attachments.storage import AttachmentStorage
from common.records.events import publish_record_event
from common.records.extraction import extracted_texts
from common.records.models import Attachment, Record
from common.records.service import tag_counts
from common.records.writer import RecordWriter
from llm_service.app.budgets import BudgetGuard
from llm_service.app.extraction.images import UnreadableImage, vision_jpeg
from llm_service.app.providers.base import Provider, source_of
from llm_service.app.providers.text import detect_language

logger = logging.getLogger("jilu.analysis")

EXISTING_TAGS_CONSIDERED = 50


class Outcome(Enum):
    DONE = "done"
    SKIPPED = "skipped"  # deleted, opted out, or already superseded by a newer version
    NOT_YET = "not_yet"  # the event is ahead of the committed record: try again later


async def _existing_tags(session: AsyncSession, owner_id: str) -> tuple[str, ...]:
    """The owner's most used tags, which the provider prefers to coining new ones."""
    return tuple(tag.name for tag in await tag_counts(session, owner_id, limit=EXISTING_TAGS_CONSIDERED))


async def _write(
    sessionmaker: async_sessionmaker[AsyncSession],
    record: Record,
    events: Redis,
    write: Callable[[RecordWriter], Awaitable[bool]],
    *,
    final: bool,
) -> bool:
    """Run `write` (a `RecordWriter` analysis write onto `record` as of its version) in its
    own transaction; once a final state is committed, announce it as `analyzed`. False when
    the record moved on."""
    async with transaction(sessionmaker) as session:
        if not await write(RecordWriter(session, events)):
            await session.rollback()
            return False
    if final:
        await _announce(events, record)
    return True


async def _announce(events: Redis, record: Record) -> None:
    """Tell live clients the result is stored. After the commit, unlike a record's own
    events, so a browser that refetches at once finds it; if Redis fails now, the result
    still reaches every client through the sync feed (its change number was bumped)."""
    try:
        await publish_record_event(events, "analyzed", record)
    except ServiceUnavailable:
        logger.warning("the analysis of record %s is stored but could not be announced", record.id)


async def analyze_record(
    sessions: Sessions,
    events: Redis,
    provider: Provider,
    record_id: str,
    version: int,
    budgets: BudgetGuard | None = None,
    storage: AttachmentStorage | None = None,
) -> Outcome:
    """Analyse `record_id` as of `version`. Provider errors propagate (the worker retries);
    a remote provider is called only within the owner's daily budget (`BudgetExceeded`).
    The stored result is announced on `events` (the record event stream) as `analyzed`.

    With a provider that sees images (and `storage`, where the files are), a record with an
    image is analysed from its first image and the text OCR read in it (`describe_image`);
    a record that opted out of AI never is (nothing of it reaches a provider)."""
    async with sessions.read() as session:
        record = await session.get(Record, record_id)
        if record is None or record.version < version:
            # Events are published before their transaction commits: the writer is not done
            # yet (or rolled back, which the attempt limit settles).
            return Outcome.NOT_YET
        if record.is_deleted or record.ai_opt_out:
            return Outcome.SKIPPED
        if record.version > version:
            return Outcome.SKIPPED
        existing = await _existing_tags(session, record.owner_id)
        extracted = (await extracted_texts(session, [record.id])).get(record.id, [])
        image = await _first_image(session, record) if storage and provider.can_see_images else None
    meter = budgets if provider.is_remote else None  # the offline provider is free
    if meter is not None:
        await meter.ensure_allowed(record.owner_id)
    if not await _write(sessions.write, record, events, lambda writer: writer.start_analysis(record), final=False):
        return Outcome.SKIPPED
    source = source_of(record, extracted)
    language = detect_language(f"{record.title or ''}\n{source.content}")
    jpeg = await _vision_jpeg(storage, image) if storage and image else None
    if jpeg is not None and image is not None:
        analysis, usage = await provider.describe_image(jpeg, ocr_text=image.ocr_text, language=language)
    else:
        analysis, usage = await provider.analyze(source, existing, language)
    if meter is not None:
        await meter.record(record.owner_id, usage.total)
    written = await _write(
        sessions.write,
        record,
        events,
        lambda writer: writer.set_ai_result(record, title=analysis.title, summary=analysis.summary, tags=analysis.tags),
        final=True,
    )
    logger.info("analysed record %s v%s with %s (%s tokens)", record_id, version, provider.name, usage.total)
    return Outcome.DONE if written else Outcome.SKIPPED


# Records that are their picture: analysed from it by a provider that sees images.
IMAGE_KINDS = frozenset({"photo", "screenshot"})


@dataclass(frozen=True)
class _Image:
    owner_id: str
    sha256: str
    ocr_text: str


async def _first_image(session: AsyncSession, record: Record) -> _Image | None:
    """The first image attachment of a photo or screenshot record (or of one with no text of
    its own) and what OCR read in it; none for a record that opted out of AI."""
    if record.ai_opt_out or (record.kind not in IMAGE_KINDS and record.content.strip()):
        return None
    statement = (
        select(Attachment.owner_id, Attachment.sha256, Attachment.extraction_status, Attachment.extracted_text)
        .where(Attachment.record_id == record.id, Attachment.content_type.startswith("image/"))
        .order_by(Attachment.id)
        .limit(1)
    )
    row = (await session.execute(statement)).first()
    if row is None:
        return None
    owner_id, sha256, status, text = row
    return _Image(owner_id, sha256, text if status == "done" else "")


async def _vision_jpeg(storage: AttachmentStorage, image: _Image) -> bytes | None:
    """The image as the provider is shown it (downscaled, no metadata); None when it cannot
    be read (the record is then analysed from its text)."""
    try:
        data = await asyncio.to_thread(storage.path(image.owner_id, image.sha256).read_bytes)
        return await asyncio.to_thread(vision_jpeg, data)
    except (OSError, UnreadableImage):
        return None


async def mark_failed(sessions: Sessions, events: Redis, record_id: str, version: int, error_class: str) -> None:
    """After the last attempt: the record shows `failed` and the error's class, nothing more."""
    async with sessions.read() as session:
        record = await session.get(Record, record_id)
    if record is not None and record.version == version:
        await _write(
            sessions.write, record, events, lambda writer: writer.set_ai_failure(record, error_class), final=True
        )
