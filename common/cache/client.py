"""The async Redis client each app makes in its lifespan, and small helpers for keys with TTL."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

KEY_PREFIX = "jilu"


def create_redis(url: str, **kwargs: Any) -> Redis:
    """A pooled async client; nothing connects until the first command."""
    kwargs.setdefault("decode_responses", True)
    kwargs.setdefault("socket_connect_timeout", 2)
    kwargs.setdefault("health_check_interval", 30)
    return Redis.from_url(url, **kwargs)


def cache_key(*parts: object) -> str:
    """`jilu:part:part...`, so every key Jilu writes is recognisable and scoped."""
    return ":".join([KEY_PREFIX, *(str(part) for part in parts)])


async def set_json(redis: Redis, key: str, value: Any, ttl: int | None = None) -> None:
    """Store `value` as JSON, expiring after `ttl` seconds when given."""
    await redis.set(key, json.dumps(value, ensure_ascii=False, default=str), ex=ttl)


async def get_json(redis: Redis, key: str, *, refresh_ttl: int | None = None) -> Any | None:
    """Read a JSON value; with `refresh_ttl`, reading it also slides its expiry (GETEX)."""
    raw = await (redis.getex(key, ex=refresh_ttl) if refresh_ttl else redis.get(key))
    return None if raw is None else json.loads(raw)


async def touch(redis: Redis, key: str, ttl: int) -> bool:
    """Push `key`'s expiry `ttl` seconds into the future; False when it is gone already."""
    return bool(await redis.expire(key, ttl))
