"""Ephemeral conversations: only in Redis, never in the database.

Their keys expire together after `JILU_CHAT_TTL` seconds, and every use (reading it,
renaming it, a new turn) slides that expiry forward; listing does not:

    jilu:chat:eph:<id>              hash  owner_id, title, created_at, updated_at
    jilu:chat:eph:<id>:messages     list  JSON messages, oldest first (the last 500)
    jilu:chat:eph:owner:<user id>   zset  the owner's ephemeral ids by last use, for listing

A conversation's context window is the tail of its history, which is in Redis already.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from common.cache import cache_key
from common.database import new_id, utcnow
from llm_service.app.chat.store import CONTEXT_TURNS, ConversationRef, NewTurn, StoredMessage
from llm_service.app.providers.base import ChatTurn

MAX_EPHEMERAL_MESSAGES = 500
MAX_EPHEMERAL_PER_USER = 100


class EphemeralStore:
    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    @staticmethod
    def meta_key(conversation_id: str) -> str:
        return cache_key("chat", "eph", conversation_id)

    @staticmethod
    def messages_key(conversation_id: str) -> str:
        return cache_key("chat", "eph", conversation_id, "messages")

    @staticmethod
    def owner_key(owner_id: str) -> str:
        return cache_key("chat", "eph", "owner", owner_id)

    def _touch(self, pipe: Any, ref_id: str, owner_id: str) -> None:
        pipe.expire(self.meta_key(ref_id), self.ttl)
        pipe.expire(self.messages_key(ref_id), self.ttl)
        pipe.expire(self.owner_key(owner_id), self.ttl)

    async def create(self, owner_id: str, title: str) -> ConversationRef:
        now = utcnow()
        ref = ConversationRef(new_id(), owner_id, title, True, now, now)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.meta_key(ref.id), mapping=_meta(ref))
            pipe.zadd(self.owner_key(owner_id), {ref.id: now.timestamp()})
            self._touch(pipe, ref.id, owner_id)
            await pipe.execute()
        return ref

    async def get(self, owner_id: str, conversation_id: str) -> ConversationRef | None:
        """The owner's ephemeral conversation, its expiry slid forward; None when there is
        none (expired, never existed, or someone else's: theirs is left untouched)."""
        ref = _ref_from_meta(conversation_id, await self.redis.hgetall(self.meta_key(conversation_id)))
        if ref is None or ref.owner_id != owner_id:
            return None
        async with self.redis.pipeline(transaction=True) as pipe:
            self._touch(pipe, ref.id, owner_id)
            still_there, *_ = await pipe.execute()
        return ref if still_there else None

    async def live(self, owner_id: str) -> list[ConversationRef]:
        """The owner's live ephemeral conversations (expired ids are pruned from the index)."""
        ids = [str(member) for member in await self.redis.zrange(self.owner_key(owner_id), 0, -1)]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for conversation_id in ids:
                pipe.hgetall(self.meta_key(conversation_id))
            metas = await pipe.execute()
        live, dead = [], []
        for conversation_id, meta in zip(ids, metas, strict=True):
            ref = _ref_from_meta(conversation_id, meta)
            if ref is not None and ref.owner_id == owner_id:
                live.append(ref)
            else:
                dead.append(conversation_id)
        if dead:
            await self.redis.zrem(self.owner_key(owner_id), *dead)
        return live

    async def rename(self, ref: ConversationRef, title: str) -> ConversationRef:
        now = utcnow()
        async with self.redis.pipeline(transaction=True) as pipe:
            # HSET on an expired key would recreate a hash without owner or TTL: only rename
            # what EXPIRE (in `get`, just before) found alive, and set its TTL again here.
            pipe.hset(self.meta_key(ref.id), mapping=_fields(title=title, updated_at=now.isoformat()))
            pipe.zadd(self.owner_key(ref.owner_id), {ref.id: now.timestamp()})
            self._touch(pipe, ref.id, ref.owner_id)
            await pipe.execute()
        return ConversationRef(ref.id, ref.owner_id, title, True, ref.created_at, now)

    async def delete(self, ref: ConversationRef) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.meta_key(ref.id), self.messages_key(ref.id))
            pipe.zrem(self.owner_key(ref.owner_id), ref.id)
            await pipe.execute()

    async def messages(self, ref: ConversationRef) -> list[StoredMessage]:
        """The whole (capped) history, oldest first."""
        return [StoredMessage.from_json(str(raw)) for raw in await self.redis.lrange(self.messages_key(ref.id), 0, -1)]

    async def context(self, ref: ConversationRef) -> list[ChatTurn]:
        raw = await self.redis.lrange(self.messages_key(ref.id), -CONTEXT_TURNS, -1)
        return [StoredMessage.from_json(str(item)).turn() for item in raw]

    async def add_turn(self, ref: ConversationRef, turn: NewTurn) -> bool:
        """Store a turn; False when the conversation expired or was deleted meanwhile."""
        if not await self.redis.expire(self.meta_key(ref.id), self.ttl):
            return False
        updated: dict[Any, Any] = {"updated_at": turn.answer.created_at.isoformat()}
        title = await self.redis.hget(self.meta_key(ref.id), "title")
        if not title:
            updated["title"] = turn.title
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self.messages_key(ref.id), *(message.to_json() for message in turn.messages))
            pipe.ltrim(self.messages_key(ref.id), -MAX_EPHEMERAL_MESSAGES, -1)
            pipe.hset(self.meta_key(ref.id), mapping=updated)
            pipe.zadd(self.owner_key(ref.owner_id), {ref.id: turn.answer.created_at.timestamp()})
            self._touch(pipe, ref.id, ref.owner_id)
            await pipe.execute()
        return True


def _fields(**values: str) -> dict[Any, Any]:
    return dict(values)


def _meta(ref: ConversationRef) -> dict[Any, Any]:
    return {
        "owner_id": ref.owner_id,
        "title": ref.title,
        "created_at": ref.created_at.isoformat(),
        "updated_at": ref.updated_at.isoformat(),
    }


def _ref_from_meta(conversation_id: str, meta: Mapping[Any, Any]) -> ConversationRef | None:
    try:
        return ConversationRef(
            id=conversation_id,
            owner_id=meta["owner_id"],
            title=meta.get("title", ""),
            ephemeral=True,
            created_at=datetime.fromisoformat(meta["created_at"]),
            updated_at=datetime.fromisoformat(meta["updated_at"]),
        )
    except (KeyError, ValueError):
        return None  # gone, or a fragment left by a race: treated as gone
