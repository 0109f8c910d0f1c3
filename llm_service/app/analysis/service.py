"""One analysis job: read the record, ask its owner's provider, write title, summary, tags.

Results are written only onto the version they were made from (an edit in between brings
its own event), they bump the record's change number so synced devices receive them and
publish an `analyzed` record event so open browsers do, and they never bump its version (a
device's pending edit stays valid).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.database import transaction
from common.errors import ServiceUnavailable
from common.records.crud import next_change_seq
from common.records.events import publish_record_event
from common.records.models import Record, RecordTag
from llm_service.app.budgets import BudgetGuard
from llm_service.app.providers.base import Provider, SourceRecord
from llm_service.app.providers.text import detect_language

logger = logging.getLogger("jilu.analysis")

EXISTING_TAGS_CONSIDERED = 50


@dataclass(frozen=True)
class Sessions:
    read: async_sessionmaker[AsyncSession]
    write: async_sessionmaker[AsyncSession]


class Outcome(Enum):
    DONE = "done"
    SKIPPED = "skipped"  # deleted, opted out, or already superseded by a newer version
    NOT_YET = "not_yet"  # the event is ahead of the committed record: try again later


def source_of(record: Record) -> SourceRecord:
    return SourceRecord(
        id=record.id,
        kind=record.kind,
        title=record.title,
        content=record.content,
        tags=tuple(record.tags or ()),
        occurred_at=record.occurred_at,
    )


async def _existing_tags(session: AsyncSession, owner_id: str) -> tuple[str, ...]:
    count = func.count().label("n")
    statement = (
        select(RecordTag.name, count)
        .where(RecordTag.owner_id == owner_id)
        .group_by(RecordTag.name)
        .order_by(count.desc(), RecordTag.name)
        .limit(EXISTING_TAGS_CONSIDERED)
    )
    return tuple(name for name, _ in (await session.execute(statement)).all())


async def _set_status(
    sessionmaker: async_sessionmaker[AsyncSession], record: Record, values: dict[str, object], events: Redis
) -> bool:
    """Write `values` onto `record` if it is still at the same version; for the final states
    bump its change number and, once committed, announce an `analyzed` event. False when the
    record moved on."""
    final = values.get("ai_status") in ("done", "failed")
    async with transaction(sessionmaker) as session:
        if final:
            values = {**values, "change_seq": await next_change_seq(session, record.owner_id)}
        result = await session.execute(
            update(Record)
            .where(Record.id == record.id, Record.version == record.version, Record.is_deleted.is_(False))
            .values(**values)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
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
    if not await _set_status(sessions.write, record, {"ai_status": "running", "ai_error": None}, events):
        return Outcome.SKIPPED
    language = detect_language(f"{record.title or ''}\n{record.content}")
    analysis, usage = await provider.analyze(source_of(record), existing, language)
    if meter is not None:
        await meter.record(record.owner_id, usage.total)
    written = await _set_status(
        sessions.write,
        record,
        {
            "ai_status": "done",
            "ai_title": analysis.title[:200],
            "ai_summary": analysis.summary,
            "ai_tags": list(analysis.tags),
            "ai_error": None,
        },
        events,
    )
    logger.info("analysed record %s v%s with %s (%s tokens)", record_id, version, provider.name, usage.total)
    return Outcome.DONE if written else Outcome.SKIPPED


async def mark_failed(sessions: Sessions, events: Redis, record_id: str, version: int, error_class: str) -> None:
    """After the last attempt: the record shows `failed` and the error's class, nothing more."""
    async with sessions.read() as session:
        record = await session.get(Record, record_id)
    if record is not None and record.version == version:
        await _set_status(sessions.write, record, {"ai_status": "failed", "ai_error": error_class[:200]}, events)
