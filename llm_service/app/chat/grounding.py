"""What an answer may draw on: the caller's own records that match the question, the
caller's memories, and the conversation's last turns.

Only the caller's live records are searched (`common.records.search`, which goes through the
owner's policy). Records that opted out of AI are left out whenever the provider is remote,
and so are memories drawn from them: their text never leaves the machine. The offline
provider runs here, so it may quote them.
"""

from __future__ import annotations

from sqlalchemy import Select, event, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, raiseload

from common.ai.models import Memory
from common.database import utcnow
from common.records.models import Record
from common.records.search import SearchFilters, search
from common.users.models import User
from llm_service.app.analysis.service import source_of
from llm_service.app.providers.base import ChatContext, ChatTurn, Language, SourceRecord
from llm_service.app.providers.text import detect_language, words

RECORDS_IN_CONTEXT = 6
MEMORIES_IN_CONTEXT = 8
MAX_TURN_CHARS = 2000
MAX_KEYWORDS = 8  # each is one more index lookup inside the search


class GroundingSession(Session):
    """A read session for grounding: records are loaded without their attachments, which
    the context never shows (their eager load would cost a query per search)."""


@event.listens_for(GroundingSession, "do_orm_execute")
def _records_without_attachments(state: ORMExecuteState) -> None:
    statement = state.statement
    if isinstance(statement, Select) and any(d.get("entity") is Record for d in statement.column_descriptions):
        state.statement = statement.options(raiseload(Record.attachments))


def grounding_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, sync_session_class=GroundingSession)


async def user_language(session: AsyncSession, user_id: str) -> Language:
    language = (await session.execute(select(User.language).where(User.id == user_id))).scalar()
    return "en" if language == "en" else "zh-CN"


async def find_records(
    session: AsyncSession, owner_id: str, question: str, history: list[ChatTurn], *, remote: bool
) -> tuple[SourceRecord, ...]:
    """The owner's best-matching live records for the question; a follow-up that finds
    nothing by itself ("那它呢？") is searched together with the previous question."""
    records = await _search(session, owner_id, question, remote=remote)
    if not records:
        previous = next((turn.content for turn in reversed(history) if turn.role == "user"), None)
        if previous:
            records = await _search(session, owner_id, f"{previous} {question}", remote=remote)
    return tuple(source_of(record) for record in records)


async def _search(session: AsyncSession, owner_id: str, question: str, *, remote: bool) -> list[Record]:
    """Records with every content word of the question first, then those with the most of
    them, in one statement (`match_any`). A question's own words ("什么", "what") are rarely
    in the record that answers it, so the query is its content words; a question with none
    is searched as it stands, all its words."""
    keywords = list(dict.fromkeys(word.surface for word in words(question)))[:MAX_KEYWORDS]
    # Opted-out records are left out by the search itself, so they never take a place.
    filters = SearchFilters(ai_allowed_only=remote)
    query = " ".join(keywords) or question
    hits = await search(session, owner_id, query, limit=RECORDS_IN_CONTEXT, filters=filters, match_any=bool(keywords))
    # Checked again here: whatever the search does, an opted-out record never goes out.
    return [record for record, _, _ in hits if not (remote and record.ai_opt_out)]


async def find_memories(session: AsyncSession, owner_id: str, *, remote: bool) -> tuple[str, ...]:
    """The owner's unexpired memories, most important first."""
    statement = (
        select(Memory.content)
        .where(Memory.owner_id == owner_id, or_(Memory.expires_at.is_(None), Memory.expires_at > utcnow()))
        .order_by(Memory.importance.desc(), Memory.updated_at.desc(), Memory.id.desc())
        .limit(MEMORIES_IN_CONTEXT)
    )
    if remote:
        opted_out = select(Record.id).where(Record.owner_id == owner_id, Record.ai_opt_out.is_(True))
        statement = statement.where(
            or_(Memory.source != "record", Memory.source_id.is_(None), Memory.source_id.not_in(opted_out))
        )
    return tuple((await session.execute(statement)).scalars())


async def build_context(
    session: AsyncSession, owner_id: str, question: str, history: list[ChatTurn], *, remote: bool
) -> ChatContext:
    """The whole grounding of one answer. Citations may name only `context.records`."""
    language = detect_language(question, "zh-CN")
    if language != detect_language(question, "en"):  # nothing to tell by: the user's own language
        language = await user_language(session, owner_id)
    return ChatContext(
        question=question,
        history=tuple(ChatTurn(turn.role, turn.content[:MAX_TURN_CHARS]) for turn in history),
        records=await find_records(session, owner_id, question, history, remote=remote),
        memories=await find_memories(session, owner_id, remote=remote),
        language=language,
    )
