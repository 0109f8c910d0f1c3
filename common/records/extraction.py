"""Asking for extractions: which attachments and records have something inside to read, the
durable job queue the extraction workers drain (`llm_service/app/extraction`), and the
state clients see as `extraction: {status, engine, error}`.

An attachment of a readable type (images, audio, PDFs, text files) and a `link` record with
a URL are owed an extraction when they are written: `pending`, and a job queued inside the
writing transaction (as record events are: if Redis cannot take it, the write fails, so
nothing acknowledged goes unread). A job names its target only; the worker reads the target's
state, so a repeated or stale job does nothing twice (`claim` in the worker).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.cache import cache_key
from common.database.ids import new_id
from common.errors import ServiceUnavailable
from common.queue import DurableQueue
from common.records.models import Attachment, Record

ExtractionStatus = Literal["pending", "running", "done", "failed", "skipped"]
Target = Literal["attachment", "record"]

EXTRACTION_STREAM = cache_key("extraction", "jobs")
EXTRACTION_GROUP = "extraction"

READABLE_PREFIXES = ("image/", "audio/", "text/")
READABLE_TYPES = frozenset({"application/pdf"})
# The reasons clients show for a `skipped` extraction that Jilu decides before any engine runs.
NOTHING_TO_READ = "Jilu reads no text from this kind of file"
NO_LINK = "the record names no http(s) link"

# The first http(s) URL in a link record: up to white space, quotes, angle brackets and the
# closing punctuation of Chinese text, which often follows a pasted link directly.
_URL = re.compile(r"https?://[^\s<>\"'`）】」』，。；！？]+", re.IGNORECASE)
MAX_URL_LENGTH = 2048


def extraction_queue(redis: Redis) -> DurableQueue:
    """The extraction jobs: a stream of its own, trimmed as jobs finish."""
    return DurableQueue(redis, EXTRACTION_STREAM, EXTRACTION_GROUP)


def readable(content_type: str) -> bool:
    """Whether an engine reads text out of files of `content_type`."""
    return content_type.startswith(READABLE_PREFIXES) or content_type in READABLE_TYPES


def link_url(record: Record) -> str | None:
    """The URL a `link` record points at: the first http(s) URL in its content, else its title."""
    if record.kind != "link":
        return None
    for text in (record.content, record.title or ""):
        found = _URL.search(text or "")
        if found and len(found.group()) <= MAX_URL_LENGTH:
            return found.group().rstrip(".,;:!?")
    return None


def _reset(target: Attachment | Record, status: ExtractionStatus | None, *, error: str | None = None) -> None:
    """`target`'s extraction set to `status`, every earlier result forgotten."""
    target.extraction_status = status
    target.extraction_engine = None
    target.extraction_error = error
    target.extraction_details = {}
    target.extracted_text = ""
    target.extracted_index = ""


async def request_extraction(redis: Redis, target: Attachment | Record, *, url: str | None = None) -> None:
    """Owe `target` a new extraction: `pending`, the last result forgotten, and a job queued.
    Called inside the transaction that writes `target` (flushed by the caller's commit).
    `url`: a link record's URL, kept so an edit that leaves it alone asks for nothing."""
    _reset(target, "pending")
    if url:
        target.extraction_details = {"url": url}
    target.extraction_requested_at = datetime.now(UTC)
    await enqueue(redis, target)


def skip_extraction(target: Attachment | Record, reason: str) -> None:
    """Nothing to read in `target`, decided before any engine: `skipped`, with `reason`."""
    _reset(target, "skipped", error=reason)


async def enqueue(redis: Redis, target: Attachment | Record) -> None:
    """Queue an extraction job for `target` (its state says what to do)."""
    kind: Target = "attachment" if isinstance(target, Attachment) else "record"
    try:
        await extraction_queue(redis).enqueue({"target": kind, "id": target.id, "owner_id": target.owner_id})
    except (RedisError, OSError) as exc:
        raise ServiceUnavailable("cannot queue the file for reading right now; try again shortly") from exc


async def attachment_added(redis: Redis, attachment: Attachment) -> None:
    """A new attachment, not yet flushed: owed an extraction when its type is readable, else
    `skipped`."""
    if not attachment.id:
        attachment.id = new_id()  # the id the job names, before the INSERT
    if readable(attachment.content_type):
        await request_extraction(redis, attachment)
    else:
        skip_extraction(attachment, NOTHING_TO_READ)


async def link_written(redis: Redis, record: Record) -> None:
    """A record was created or edited: a `link` record whose URL is new is owed an
    extraction; one with no URL is `skipped`; a record that stopped being a link shows none."""
    url = link_url(record)
    if record.kind != "link":
        if record.extraction_status is not None:
            _reset(record, None)
        return
    if url is None:
        if record.extraction_status != "skipped" or record.extraction_error != NO_LINK:
            skip_extraction(record, NO_LINK)
        return
    if record.extraction_status is None or (record.extraction_details or {}).get("url") != url:
        await request_extraction(redis, record, url=url)


# What a provider is given of one extracted text (a PDF can hold a book).
PROVIDER_TEXT_CHARS = 4000


async def texts_read(session: AsyncSession, record_ids: Sequence[str]) -> list[tuple[str, str | None, str]]:
    """The finished readings of these records, as (record id, attachment id or None for the
    link's page, text): the link's page first, then the attachments in the order they were
    added. One query."""
    if not record_ids:
        return []
    links = select(Record.id, literal(None).label("attachment_id"), Record.extracted_text).where(
        Record.id.in_(record_ids), Record.extraction_status == "done"
    )
    files = select(Attachment.record_id, Attachment.id, Attachment.extracted_text).where(
        Attachment.record_id.in_(record_ids), Attachment.extraction_status == "done"
    )
    rows = await session.execute(links.union_all(files).order_by(literal_column("attachment_id").nulls_first()))
    return [(record_id, attachment_id, text or "") for record_id, attachment_id, text in rows]


async def extracted_texts(session: AsyncSession, record_ids: Sequence[str]) -> dict[str, list[str]]:
    """What a provider is given of these records' readings (`texts_read`), by record id."""
    found: dict[str, list[str]] = {}
    for record_id, _attachment_id, text in await texts_read(session, record_ids):
        if text:
            found.setdefault(record_id, []).append(text[:PROVIDER_TEXT_CHARS])
    return found
