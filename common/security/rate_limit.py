"""Rate limits shared by every replica: the `limits` library on the same Redis.

A limit that cannot be checked because Redis is down fails closed: the request is refused
with 503 rather than let through unlimited (see docs/decisions.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.errors import RateLimited, ServiceUnavailable

NAMESPACE = "jilu-rl"


@dataclass(frozen=True)
class LimitState:
    item: RateLimitItem
    remaining: int
    reset_after: int

    @property
    def headers(self) -> dict[str, str]:
        """IETF RateLimit / RateLimit-Policy headers (draft-ietf-httpapi-ratelimit-headers)."""
        window = self.item.get_expiry()
        return {
            "RateLimit": f"limit={self.item.amount}, remaining={self.remaining}, reset={self.reset_after}",
            "RateLimit-Policy": f"{self.item.amount};w={window}",
        }


class RateLimiter:
    """`hit(rate, *key)` counts one request and raises `RateLimited` past the limit."""

    def __init__(self, redis: Redis) -> None:
        # The app's own connection pool: one set of connections, closed with the app.
        url = "async+redis://"  # the pool decides where; the URL only picks the implementation
        self.storage = RedisStorage(
            url,
            implementation="redispy",
            key_prefix=NAMESPACE,
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # passed on to redis-py
        )
        self._moving = MovingWindowRateLimiter(self.storage)
        self._fixed = FixedWindowRateLimiter(self.storage)

    async def hit(self, rate: str, *key: str) -> LimitState:
        """Count a request against `rate` for `key` on a moving window (logins, registration);
        the state gives the RateLimit headers for the answer."""
        item = parse(rate)
        try:
            allowed = await self._moving.hit(item, *key)
            stats = await self._moving.get_window_stats(item, *key)
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable("rate limiting is unavailable; try again shortly") from exc
        state = _state(item, stats.remaining, stats.reset_time)
        if not allowed:
            raise RateLimited(
                state.reset_after, f"too many requests; retry in {state.reset_after}s", headers=state.headers
            )
        return state

    async def check(self, rate: str, *key: str) -> None:
        """Count a request on a cheaper fixed window, reading the window only when it is
        exceeded: one Redis call on the hot path of every authenticated request."""
        await self._admit(self._fixed, rate, key)

    async def admit(self, rate: str, *key: str) -> None:
        """`hit` for an answer that carries no RateLimit headers: the same moving window,
        read only when it is exceeded, so one Redis call when the request is let through."""
        await self._admit(self._moving, rate, key)

    async def _admit(
        self, limiter: FixedWindowRateLimiter | MovingWindowRateLimiter, rate: str, key: tuple[str, ...]
    ) -> None:
        item = parse(rate)
        try:
            if await limiter.hit(item, *key):
                return
            stats = await limiter.get_window_stats(item, *key)
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable("rate limiting is unavailable; try again shortly") from exc
        state = _state(item, stats.remaining, stats.reset_time)
        raise RateLimited(state.reset_after, f"too many requests; retry in {state.reset_after}s", headers=state.headers)


def _state(item: RateLimitItem, remaining: int, reset_time: float) -> LimitState:
    return LimitState(item, max(0, remaining), max(1, math.ceil(reset_time - time.time())))
