"""The shapes every conversation shares, kept or ephemeral, and the cached context window.
Kept conversations are stored through `repository.py`, ephemeral ones in `ephemeral.py`.

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

from common.ai.models import ChatMessage
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
