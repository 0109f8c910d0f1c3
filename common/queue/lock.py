"""A Redis lock for work that must happen once across every process (the scheduler's runs)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

# Only the holder's token may release or extend the lock: a holder that outlived its `ttl`
# must not free or keep a lock another process has taken since.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_EXTEND = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"


class RedisLock:
    """A lock one holder has until it releases it or `ttl` seconds pass (if the holder dies)."""

    def __init__(self, redis: Redis, key: str, ttl: int) -> None:
        self.redis, self.key, self.ttl = redis, key, ttl
        self.token = secrets.token_hex(16)

    async def acquire(self) -> bool:
        """Take the lock if nobody holds it; whether this holder has it now."""
        return bool(await self.redis.set(self.key, self.token, nx=True, ex=self.ttl))

    async def extend(self) -> bool:
        """Another `ttl` from now, if this holder still has the lock; whether it does."""
        return bool(await self.redis.eval(_EXTEND, 1, self.key, self.token, str(self.ttl)))  # type: ignore[misc]

    async def release(self) -> None:
        """Free the lock if this holder still has it."""
        await self.redis.eval(_RELEASE, 1, self.key, self.token)  # type: ignore[misc]

    @asynccontextmanager
    async def held(self) -> AsyncIterator[bool]:
        """True inside when this holder got the lock (and releases it after)."""
        got = await self.acquire()
        try:
            yield got
        finally:
            if got:
                await self.release()
