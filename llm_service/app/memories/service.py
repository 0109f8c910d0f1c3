"""Memories: the user's own list, deduplication and reinforcement, extraction, decay.

Deduplication: a memory's `content_key` is the sha256 of its normalised content (NFKC,
case-folded, whitespace collapsed, trailing punctuation stripped), unique per owner. Stating
a known fact again (the user adding it, or extraction finding it) reinforces the memory
instead of duplicating it: importance becomes the larger of the two, `reinforced_at` becomes
now, a short-term memory's expiry moves out (or it becomes long-term when the new statement
is long-term), and when the user states it, the memory becomes the user's own.

Lifetimes: short-term memories expire `short_term` after they were last stated and are
hidden from then on (the daily job deletes them). Long-term memories found by extraction
decay: once per day the job multiplies the importance of those not reinforced for a day by
`factor` and deletes those that fall below `floor`. The user's own memories (`source`
"user": added by the user, or edited by them, which makes a memory theirs) never decay:
their importance stays what the user set.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import and_, delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.ai.models import Memory
from common.database import Sessions, transaction, utcnow
from common.errors import Conflict
from common.records.models import Record
from llm_service.app.budgets import BudgetGuard
from llm_service.app.memories.repository import MemoryRepository
from llm_service.app.memories.schemas import MAX_CONTENT_CHARS, MemoryCreate, MemoryUpdate
from llm_service.app.providers.base import MemoryCandidate, Provider
from llm_service.app.providers.text import detect_language

logger = logging.getLogger("jilu.memories")

Source = Literal["user", "record", "chat"]
DEFAULT_SHORT_TERM = timedelta(days=7)


@dataclass(frozen=True)
class DecayPolicy:
    factor: float = 0.97  # per day without reinforcement
    floor: float = 0.05  # extracted long-term memories below this are forgotten


@dataclass(frozen=True)
class Remembered:
    memory: Memory
    created: bool  # False: an existing memory was reinforced


@dataclass(frozen=True)
class DecayResult:
    decayed: int
    forgotten: int  # long-term memories that fell below the floor
    expired: int  # short-term memories past their expiry


def content_key(content: str) -> str:
    """The dedupe key: sha256 of the normalised content."""
    text = " ".join(unicodedata.normalize("NFKC", content).casefold().split())
    end = len(text)
    while end and (unicodedata.category(text[end - 1]).startswith("P") or text[end - 1].isspace()):
        end -= 1
    return hashlib.sha256(text[:end].encode()).hexdigest()


def _now(now: datetime | None) -> datetime:
    return (now or utcnow()).astimezone(UTC)


async def list_page(
    session: AsyncSession,
    owner_id: str,
    *,
    limit: int,
    cursor: str | None,
    long_term: bool | None = None,
    now: datetime | None = None,
) -> tuple[list[Memory], str | None]:
    """The owner's live memories, most recently changed first."""
    memories = MemoryRepository(session, owner_id, now=now)
    statement = memories.statement()
    if long_term is not None:
        statement = statement.where(Memory.long_term.is_(long_term))
    return await memories.page(statement, limit=limit, cursor=cursor)


async def get(session: AsyncSession, owner_id: str, memory_id: str) -> Memory:
    """One live memory of the owner's; anyone else's (or an expired one) is not found."""
    return await MemoryRepository(session, owner_id).get_or_404(memory_id)


def _reinforce(
    memory: Memory, importance: float, long_term: bool, source: Source, now: datetime, short_term: timedelta
) -> None:
    memory.importance = max(memory.importance, importance)
    memory.reinforced_at = now
    if long_term:
        memory.long_term, memory.expires_at = True, None
    elif not memory.long_term:
        memory.expires_at = max(memory.expires_at or now, now + short_term)
    if source == "user":
        memory.source = "user"


def _revive(
    memory: Memory,
    content: str,
    importance: float,
    long_term: bool,
    source: Source,
    source_id: str | None,
    now: datetime,
    short_term: timedelta,
) -> None:
    """An expired memory (hidden, not yet deleted) stated again starts afresh."""
    memory.content, memory.importance, memory.long_term = content, importance, long_term
    memory.source, memory.source_id = source, source_id
    memory.expires_at = None if long_term else now + short_term
    memory.reinforced_at = memory.created_at = now


async def remember_one(
    session: AsyncSession,
    owner_id: str,
    content: str,
    *,
    importance: float,
    long_term: bool,
    source: Source,
    source_id: str | None = None,
    short_term: timedelta = DEFAULT_SHORT_TERM,
    now: datetime | None = None,
) -> Remembered:
    """Store one fact, or reinforce the memory that already states it."""
    now = _now(now)
    content = content.strip()[:MAX_CONTENT_CHARS]
    importance = min(1.0, max(0.0, importance))
    key = content_key(content)
    memories = MemoryRepository(session, owner_id, now=now)
    for _ in range(2):  # a concurrent insert of the same fact: the second pass reinforces it
        memory = await memories.stating(key, for_update=True)
        if memory is not None:
            if memory.expires_at is not None and memory.expires_at <= now:
                _revive(memory, content, importance, long_term, source, source_id, now, short_term)
                await session.flush()
                return Remembered(memory, created=True)
            _reinforce(memory, importance, long_term, source, now, short_term)
            await session.flush()
            return Remembered(memory, created=False)
        memory = Memory(
            owner_id=owner_id,
            content=content,
            content_key=key,
            importance=importance,
            long_term=long_term,
            source=source,
            source_id=source_id,
            expires_at=None if long_term else now + short_term,
            reinforced_at=now,
            created_at=now,
            updated_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(memory)
                await session.flush()
        except IntegrityError:
            continue
        return Remembered(memory, created=True)
    raise Conflict("the memory changed while it was being stored; try again")


async def remember(
    session: AsyncSession,
    owner_id: str,
    candidates: Iterable[MemoryCandidate],
    source: Source,
    source_id: str | None,
    *,
    short_term: timedelta = DEFAULT_SHORT_TERM,
    now: datetime | None = None,
) -> list[Remembered]:
    """Store what extraction found (new facts added, known ones reinforced)."""
    stored = []
    for candidate in candidates:
        if not candidate.content.strip() or "\x00" in candidate.content:
            continue
        stored.append(
            await remember_one(
                session,
                owner_id,
                candidate.content,
                importance=candidate.importance,
                long_term=candidate.long_term,
                source=source,
                source_id=source_id,
                short_term=short_term,
                now=now,
            )
        )
    return stored


async def remember_from_text(
    sessions: Sessions,
    provider: Provider,
    owner_id: str,
    text: str,
    source: Source,
    source_id: str | None,
    *,
    short_term: timedelta = DEFAULT_SHORT_TERM,
    budgets: BudgetGuard | None = None,
) -> list[Remembered]:
    """Ask `provider` for the facts in `text` and store them (for chat and analysis).

    The provider is called outside any transaction, within the owner's daily budget when it
    is remote; provider errors and `BudgetExceeded` propagate. The caller makes sure `text`
    may go to `provider` (never an `ai_opt_out` record's to a remote one). Pass
    `short_term=timedelta(days=settings.memory_short_term_days)` and the app's `BudgetGuard`.
    """
    if not text.strip():
        return []
    meter = budgets if provider.is_remote else None
    if meter is not None:
        await meter.ensure_allowed(owner_id)
    candidates, usage = await provider.extract_memories(text, detect_language(text))
    if meter is not None:
        await meter.record(owner_id, usage.total)
    if not candidates:
        return []
    async with transaction(sessions.write) as session:
        stored = await remember(session, owner_id, candidates, source, source_id, short_term=short_term)
    logger.info("remembered %d facts from %s %s (%s tokens)", len(stored), source, source_id, usage.total)
    return stored


async def remember_from_record(
    sessions: Sessions,
    provider: Provider,
    record_id: str,
    version: int,
    *,
    short_term: timedelta,
    budgets: BudgetGuard | None = None,
) -> list[Remembered]:
    """After a record's analysis: the facts in it, unless it opted out of AI, was deleted, or
    moved on to a newer version (whose own analysis will extract them). Best effort: a
    failure is logged, never raised (the analysis itself succeeded)."""
    try:
        async with sessions.read() as session:
            record = await session.get(Record, record_id)
        if record is None or record.is_deleted or record.ai_opt_out or record.version != version:
            return []
        text = "\n".join(part for part in (record.title, record.content) if part)
        return await remember_from_text(
            sessions, provider, record.owner_id, text, "record", record.id, short_term=short_term, budgets=budgets
        )
    except Exception as exc:
        logger.warning("extracting memories from record %s failed: %s", record_id, type(exc).__name__, exc_info=True)
        return []


def extraction_after_analysis(
    sessions: Sessions, short_term: timedelta, budgets: BudgetGuard | None = None
) -> Callable[[Provider, str, int], Awaitable[list[Remembered]]]:
    """The analysis workers' `after_analysis` hook: memories from each analysed record."""

    async def extract(provider: Provider, record_id: str, version: int) -> list[Remembered]:
        return await remember_from_record(
            sessions, provider, record_id, version, short_term=short_term, budgets=budgets
        )

    return extract


async def create(
    session: AsyncSession, owner_id: str, data: MemoryCreate, *, short_term: timedelta, now: datetime | None = None
) -> Remembered:
    return await remember_one(
        session,
        owner_id,
        data.content,
        importance=data.importance,
        long_term=data.long_term,
        source="user",
        short_term=short_term,
        now=now,
    )


async def update_memory(
    session: AsyncSession,
    owner_id: str,
    memory_id: str,
    changes: MemoryUpdate,
    *,
    short_term: timedelta,
    now: datetime | None = None,
) -> Memory:
    """Edit a memory; an edited memory is the user's own from then on (it no longer decays)."""
    now = _now(now)
    memories = MemoryRepository(session, owner_id, now=now)
    memory = await memories.get_or_404(memory_id, for_update=True)
    values = changes.model_dump(exclude_unset=True)
    if "content" in values:
        key = content_key(values["content"])
        if key != memory.content_key:
            clash = await memories.stating(key)
            if clash is not None and clash.expires_at is not None and clash.expires_at <= now:
                await session.delete(clash)  # expired and hidden: it gives way
                await session.flush()
            elif clash is not None:
                raise Conflict("another memory already says this", id=clash.id)
            memory.content_key = key
        memory.content = values["content"]
    if "importance" in values:
        memory.importance = values["importance"]
    if values.get("long_term") is True:
        memory.long_term, memory.expires_at = True, None
    elif values.get("long_term") is False and memory.long_term:
        memory.long_term, memory.expires_at = False, now + short_term
    if values:
        memory.source = "user"
        memory.reinforced_at = now
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # the same content written concurrently by another request
        raise Conflict("another memory already says this") from exc
    return memory


async def delete_memory(session: AsyncSession, owner_id: str, memory_id: str) -> None:
    """Forget one live memory of the owner's for good; anyone else's (or an expired one) is
    not found."""
    await MemoryRepository(session, owner_id).delete_or_404(memory_id)


async def decay(session: AsyncSession, policy: DecayPolicy, *, now: datetime | None = None) -> DecayResult:
    """One day's decay for every owner (the scheduler runs it once per day): extracted
    long-term memories not reinforced for a day lose `1 - factor` of their importance, those
    below the floor are forgotten, and short-term memories past their expiry are deleted.
    `updated_at` is left alone: decay is not an edit."""
    now = _now(now)
    decaying = and_(Memory.long_term.is_(True), Memory.source != "user")
    reinforced = func.coalesce(Memory.reinforced_at, Memory.created_at)
    decayed = await session.execute(
        update(Memory)
        .where(decaying, reinforced <= now - timedelta(days=1))
        .values(importance=Memory.importance * policy.factor, updated_at=Memory.updated_at)
        .execution_options(synchronize_session=False)
    )
    forgotten = await session.execute(
        delete(Memory).where(decaying, Memory.importance < policy.floor).execution_options(synchronize_session=False)
    )
    expired = await session.execute(
        delete(Memory)
        .where(Memory.long_term.is_(False), Memory.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    return DecayResult(
        decayed=decayed.rowcount,  # type: ignore[attr-defined]
        forgotten=forgotten.rowcount,  # type: ignore[attr-defined]
        expired=expired.rowcount,  # type: ignore[attr-defined]
    )
