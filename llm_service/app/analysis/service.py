"""One analysis job: read the record, ask its owner's provider, write title, summary, tags.

Results are written only onto the version they were made from (an edit in between brings
its own event), they bump the record's change number so synced devices receive them and
publish an `analyzed` record event so open browsers do, and they never bump its version (a
device's pending edit stays valid).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import Enum

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.database import Sessions, transaction
from common.errors import ServiceUnavailable
from common.records.events import publish_record_event
from common.records.models import Record
from common.records.service import tag_counts
from common.records.writer import RecordWriter
from llm_service.app.budgets import BudgetGuard
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
) -> Outcome:
    """Analyse `record_id` as of `version`. Provider errors propagate (the worker retries);
    a remote provider is called only within the owner's daily budget (`BudgetExceeded`).
    The stored result is announced on `events` (the record event stream) as `analyzed`."""
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
    meter = budgets if provider.is_remote else None  # the offline provider is free
    if meter is not None:
        await meter.ensure_allowed(record.owner_id)
    if not await _write(sessions.write, record, events, lambda writer: writer.start_analysis(record), final=False):
        return Outcome.SKIPPED
    language = detect_language(f"{record.title or ''}\n{record.content}")
    analysis, usage = await provider.analyze(source_of(record), existing, language)
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


async def mark_failed(sessions: Sessions, events: Redis, record_id: str, version: int, error_class: str) -> None:
    """After the last attempt: the record shows `failed` and the error's class, nothing more."""
    async with sessions.read() as session:
        record = await session.get(Record, record_id)
    if record is not None and record.version == version:
        await _write(
            sessions.write, record, events, lambda writer: writer.set_ai_failure(record, error_class), final=True
        )
