"""What an answer may draw on: the caller's own records that match the question, the
caller's memories, and the conversation's last turns.

Only the caller's live records are searched (`common.records.search`, which goes through the
owner's policy). Records that opted out of AI are left out whenever the provider is remote,
and so are memories drawn from them: their text never leaves the machine. The offline
provider runs here, so it may quote them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BindParameter, Select, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.ai.models import Memory
from common.database import utcnow
from common.records.extraction import extracted_texts
from common.records.models import Record
from common.records.repository import owned_records
from common.records.search import SearchFilters, parse_query, ranked_records
from common.users.models import User
from llm_service.app.memories.repository import owned_memories
from llm_service.app.providers.base import ChatContext, ChatTurn, Language, SourceRecord, source_of
from llm_service.app.providers.text import detect_language, dictionaries_ready, words

RECORDS_IN_CONTEXT = 6
MEMORIES_IN_CONTEXT = 8
MAX_TURN_CHARS = 2000
MAX_KEYWORDS = 8  # each is one more index lookup inside the search


async def user_language(session: AsyncSession, user_id: str) -> Language:
    language = (await session.execute(select(User.language).where(User.id == user_id))).scalar()
    return "en" if language == "en" else "zh-CN"


@dataclass(frozen=True)
class Sources:
    """What the question itself finds: the owner's records and memories, and its language."""

    records: tuple[SourceRecord, ...]
    memories: tuple[str, ...]
    language: Language


async def find_sources(session: AsyncSession, owner_id: str, question: str, *, remote: bool) -> Sources:
    """The owner's best-matching live records for the question, their memories, and the
    language to answer in."""
    language = detect_language(question, "zh-CN")
    if language != detect_language(question, "en"):  # nothing to tell by: the user's own language
        language = await user_language(session, owner_id)
    records = await _search(session, owner_id, question, remote=remote)
    memories = await find_memories(session, owner_id, remote=remote)
    return Sources(records, memories, language)


async def build_context(
    session: AsyncSession, owner_id: str, question: str, sources: Sources, history: list[ChatTurn], *, remote: bool
) -> ChatContext:
    """The whole grounding of one answer. Citations may name only `context.records`. A
    follow-up that finds nothing by itself ("那它呢？") is searched together with the
    previous question."""
    records = sources.records
    if not records:
        previous = next((turn.content for turn in reversed(history) if turn.role == "user"), None)
        if previous:
            records = await _search(session, owner_id, f"{previous} {question}", remote=remote)
    return ChatContext(
        question=question,
        history=tuple(ChatTurn(turn.role, turn.content[:MAX_TURN_CHARS]) for turn in history),
        records=records,
        memories=sources.memories,
        language=sources.language,
    )


async def _search(session: AsyncSession, owner_id: str, question: str, *, remote: bool) -> tuple[SourceRecord, ...]:
    """Records with every content word of the question first, then those with the most of
    them, in one statement (`match_any`), each with the text read out of its attachments and
    link (which the search matched as well). A question's own words ("什么", "what") are rarely
    in the record that answers it, so the query is its content words; a question with none
    is searched as it stands, all its words."""
    await dictionaries_ready()
    keywords = list(dict.fromkeys(word.surface for word in words(question)))[:MAX_KEYWORDS]
    # Opted-out records are left out by the search itself, so they never take a place.
    filters = SearchFilters(ai_allowed_only=remote)
    query = " ".join(keywords) or question
    terms = parse_query(query)
    hits = await ranked_records(
        session,
        owner_id,
        terms,
        limit=RECORDS_IN_CONTEXT,
        filters=filters,
        match_any=bool(keywords),
        with_attachments=False,  # the context never shows them
    )
    # Checked again here: whatever the search does, an opted-out record never goes out.
    records = [record for record, _ in hits if not (remote and record.ai_opt_out)]
    extracted = await extracted_texts(session, [record.id for record in records])
    return tuple(source_of(record, extracted.get(record.id, ())) for record in records)


def _memories_statement(*, remote: bool) -> Select[str]:
    """The owner's (`:owner_id`) memories unexpired at `:now`, most important first; for a
    remote provider, none drawn from a record that opted out of AI."""
    owner_id: BindParameter[str] = bindparam("owner_id")
    statement = (
        owned_memories(owner_id, bindparam("now"))
        .with_only_columns(Memory.content)
        .order_by(Memory.importance.desc(), Memory.updated_at.desc(), Memory.id.desc())
        .limit(MEMORIES_IN_CONTEXT)
    )
    if remote:  # deleted records too: what was drawn from an opted-out record never goes out
        opted_out = (
            owned_records(owner_id, include_deleted=True)
            .with_only_columns(Record.id)
            .where(Record.ai_opt_out.is_(True))
        )
        statement = statement.where(
            or_(Memory.source != "record", Memory.source_id.is_(None), Memory.source_id.not_in(opted_out))
        )
    return statement


# Built once each, run with their parameters: asked before every answer.
_MEMORIES = {remote: _memories_statement(remote=remote) for remote in (False, True)}


async def find_memories(session: AsyncSession, owner_id: str, *, remote: bool) -> tuple[str, ...]:
    """The owner's unexpired memories, most important first."""
    params = {"owner_id": owner_id, "now": utcnow()}
    return tuple((await session.execute(_MEMORIES[remote], params)).scalars())
