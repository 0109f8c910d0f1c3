"""Kept conversations and their messages (the database), the shapes every conversation
shares, and the cached context window. Ephemeral conversations live in `ephemeral.py`.

The recent context window of a kept conversation (its last turns, what the model is given
as history) is cached in `jilu:chat:ctx:<id>`, a list refilled from the database on a miss.
Its TTL is set when it is filled and not extended by appends, so a rare race (two turns of
one conversation at once) can leave it stale for at most `CONTEXT_TTL`. An ephemeral
conversation's window is simply the tail of its history, which is in Redis already.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from redis.asyncio import Redis
from sqlalchemy import Select, and_, bindparam, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.ai.models import ChatMessage, Conversation
from common.cache import cache_key
from common.database import new_id, utcnow
from common.pagination import encode_cursor
from llm_service.app.chat.schemas import ChatMessagePublic, ConversationPublic
from llm_service.app.providers.base import ChatTurn

CONTEXT_TURNS = 12  # messages of history given to the model (six questions and answers)
CONTEXT_TTL = 600

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class ConversationRef:
    """A conversation the caller owns, kept or ephemeral."""

    id: str
    owner_id: str
    title: str
    ephemeral: bool
    created_at: datetime
    updated_at: datetime

    @property
    def sort_key(self) -> tuple[datetime, str]:
        return self.updated_at, self.id

    def public(self) -> ConversationPublic:
        return ConversationPublic(
            id=self.id,
            title=self.title,
            ephemeral=self.ephemeral,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


@dataclass(frozen=True)
class StoredMessage:
    id: str
    role: Role
    content: str
    created_at: datetime
    citations: tuple[str, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def new(cls, role: Role, content: str, **kwargs: Any) -> StoredMessage:
        return cls(id=new_id(), role=role, content=content, created_at=utcnow(), **kwargs)

    @property
    def sort_key(self) -> tuple[datetime, str]:
        return self.created_at, self.id

    def public(self) -> ChatMessagePublic:
        return ChatMessagePublic(
            id=self.id, role=self.role, content=self.content, citations=list(self.citations), created_at=self.created_at
        )

    def turn(self) -> ChatTurn:
        return ChatTurn(role=self.role, content=self.content)

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "role": self.role,
                "content": self.content,
                "citations": list(self.citations),
                "created_at": self.created_at.isoformat(),
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: str) -> StoredMessage:
        data = json.loads(raw)
        return cls(
            id=data["id"],
            role=data["role"],
            content=data["content"],
            citations=tuple(data.get("citations") or ()),
            created_at=datetime.fromisoformat(data["created_at"]),
        )

    @classmethod
    def from_row(cls, row: ChatMessage) -> StoredMessage:
        role: Role = "assistant" if row.role == "assistant" else "user"
        return cls(
            id=row.id,
            role=role,
            content=row.content,
            citations=tuple(str(c) for c in row.citations or ()),
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class NewTurn:
    """A question and its answer, stored together once the answer is complete."""

    question: StoredMessage
    answer: StoredMessage
    title: str  # the conversation's title if it has none yet

    @property
    def messages(self) -> tuple[StoredMessage, StoredMessage]:
        return self.question, self.answer


def after_cursor(items: list[Any], cursor: tuple[datetime, str] | None, limit: int) -> tuple[list[Any], str | None]:
    """Newest first, the items strictly older than `cursor`, one page of them and the next
    cursor (items have `sort_key`: (time, id))."""
    ordered = sorted(items, key=lambda item: item.sort_key, reverse=True)
    if cursor is not None:
        ordered = [item for item in ordered if item.sort_key < cursor]
    if len(ordered) <= limit:
        return ordered, None
    page = ordered[:limit]
    return page, encode_cursor(*page[-1].sort_key)


# -- kept conversations (the database) ---------------------------------------------------


def _kept_ref(row: Conversation) -> ConversationRef:
    return ConversationRef(row.id, row.owner_id, row.title, False, row.created_at, row.updated_at)


# The caller's conversation, built once and run with `owner_id` and `conversation_id`: asked
# before and after every answer.
_OWNED = select(Conversation).where(
    Conversation.id == bindparam("conversation_id"), Conversation.owner_id == bindparam("owner_id")
)
_OWNED_FOR_UPDATE = _OWNED.with_for_update()


async def get_kept(session: AsyncSession, owner_id: str, conversation_id: str) -> ConversationRef | None:
    params = {"owner_id": owner_id, "conversation_id": conversation_id}
    row = (await session.execute(_OWNED, params)).scalar()
    return None if row is None else _kept_ref(row)


async def list_kept(
    session: AsyncSession, owner_id: str, cursor: tuple[datetime, str] | None, limit: int
) -> list[ConversationRef]:
    """Up to `limit` of the owner's kept conversations after `cursor`, newest first."""
    statement = select(Conversation).where(Conversation.owner_id == owner_id)
    if cursor is not None:
        moment, row_id = cursor
        statement = statement.where(
            or_(Conversation.updated_at < moment, and_(Conversation.updated_at == moment, Conversation.id < row_id))
        )
    statement = statement.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit)
    return [_kept_ref(row) for row in (await session.execute(statement)).scalars()]


async def create_kept(session: AsyncSession, owner_id: str, title: str) -> ConversationRef:
    row = Conversation(owner_id=owner_id, title=title)
    session.add(row)
    await session.flush()
    return _kept_ref(row)


async def rename_kept(session: AsyncSession, ref: ConversationRef, title: str) -> ConversationRef:
    params = {"owner_id": ref.owner_id, "conversation_id": ref.id}
    row = (await session.execute(_OWNED, params)).scalar_one()
    row.title = title
    row.updated_at = utcnow()
    await session.flush()
    return _kept_ref(row)


async def delete_kept(session: AsyncSession, ref: ConversationRef) -> None:
    # Messages first: the cascade is the database's, but SQLite applies it only with its pragma.
    await session.execute(delete(ChatMessage).where(ChatMessage.conversation_id == ref.id))
    await session.execute(delete(Conversation).where(Conversation.id == ref.id, Conversation.owner_id == ref.owner_id))


def _messages_of(ref: ConversationRef) -> Select[Any]:
    return select(ChatMessage).where(ChatMessage.conversation_id == ref.id, ChatMessage.owner_id == ref.owner_id)


async def kept_messages(
    session: AsyncSession, ref: ConversationRef, cursor: tuple[datetime, str] | None, limit: int
) -> list[StoredMessage]:
    statement = _messages_of(ref)
    if cursor is not None:
        moment, row_id = cursor
        statement = statement.where(
            or_(ChatMessage.created_at < moment, and_(ChatMessage.created_at == moment, ChatMessage.id < row_id))
        )
    statement = statement.order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc()).limit(limit)
    return [StoredMessage.from_row(row) for row in (await session.execute(statement)).scalars()]


async def add_kept_turn(session: AsyncSession, ref: ConversationRef, turn: NewTurn) -> bool:
    """Store a turn; False when the conversation was deleted in the meantime."""
    params = {"owner_id": ref.owner_id, "conversation_id": ref.id}
    row = (await session.execute(_OWNED_FOR_UPDATE, params)).scalar()
    if row is None:
        return False
    for message in turn.messages:
        session.add(
            ChatMessage(
                id=message.id,
                conversation_id=ref.id,
                owner_id=ref.owner_id,
                role=message.role,
                content=message.content,
                citations=list(message.citations),
                prompt_tokens=message.prompt_tokens,
                completion_tokens=message.completion_tokens,
                created_at=message.created_at,
            )
        )
    row.updated_at = turn.answer.created_at
    if not row.title:
        row.title = turn.title
    await session.flush()
    return True


class ContextCache:
    """The last turns of kept conversations, in Redis with a TTL."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def key(conversation_id: str) -> str:
        return cache_key("chat", "ctx", conversation_id)

    async def get(self, conversation_id: str) -> list[ChatTurn] | None:
        raw = await self.redis.lrange(self.key(conversation_id), -CONTEXT_TURNS, -1)
        if not raw:
            return None
        return [ChatTurn(**json.loads(item)) for item in raw]

    async def fill(self, conversation_id: str, turns: list[ChatTurn]) -> None:
        if not turns:
            return
        key = self.key(conversation_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.rpush(key, *(_turn_json(turn) for turn in turns[-CONTEXT_TURNS:]))
            pipe.expire(key, CONTEXT_TTL)
            await pipe.execute()

    async def append(self, conversation_id: str, turns: list[ChatTurn]) -> None:
        """Add turns to a cached window (nothing when none is cached: the next read fills it)."""
        key = self.key(conversation_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpushx(key, *(_turn_json(turn) for turn in turns))  # type: ignore[arg-type]
            pipe.ltrim(key, -CONTEXT_TURNS, -1)
            await pipe.execute()

    async def drop(self, conversation_id: str) -> None:
        await self.redis.delete(self.key(conversation_id))


def _turn_json(turn: ChatTurn) -> str:
    return json.dumps({"role": turn.role, "content": turn.content}, ensure_ascii=False)


async def kept_context(session: AsyncSession, cache: ContextCache, ref: ConversationRef) -> list[ChatTurn]:
    """The conversation's last turns, oldest first: from the cache, else the database."""
    cached = await cache.get(ref.id)
    if cached is not None:
        return cached
    recent = await kept_messages(session, ref, None, CONTEXT_TURNS)
    turns = [message.turn() for message in reversed(recent)]
    await cache.fill(ref.id, turns)
    return turns
