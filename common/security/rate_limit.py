"""Rate limits shared by every replica: the `limits` library on the same Redis.

A limit that cannot be checked because Redis is down fails closed: the request is refused
with 503 rather than let through unlimited (see docs/decisions.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.errors import RateLimited, ServiceUnavailable

NAMESPACE = "jilu-rl"

# A Lua fragment for scripts that count a request in the same round trip as other work
# (`common.security.admission`). It counts on a fixed window as the `limits` library's own
# script does (the request that opens the window sets its expiry), and reads the window's
# TTL only when the limit is passed. The window's key is the script's last key, the limit and
# the window's seconds its last two arguments (`FixedWindow.args`); it sets `count` and `ttl`.
FIXED_WINDOW_LUA = """
local window = KEYS[#KEYS]
local count = redis.call('INCRBY', window, 1)
if count == 1 then redis.call('EXPIRE', window, ARGV[#ARGV]) end
local ttl = -1
if count > tonumber(ARGV[#ARGV - 1]) then ttl = redis.call('TTL', window) end
"""


@lru_cache(maxsize=64)
def parse_rate(rate: str) -> RateLimitItem:
    """`rate` ("600/minute") as a limit; parsed once per process, not on every request."""
    return parse(rate)


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


@dataclass(frozen=True)
class FixedWindow:
    """The fixed window `RateLimiter.check(rate, *key)` counts on, for a script that counts it
    itself (`FIXED_WINDOW_LUA`) alongside other work: one counter, whichever counts."""

    item: RateLimitItem
    key: str  # the Redis key, as the `limits` library names it

    @property
    def args(self) -> tuple[int, int]:
        """The script's arguments: the limit, and the window in seconds."""
        return self.item.amount, self.item.get_expiry()

    def admit(self, count: int, ttl: int) -> None:
        """Raise `RateLimited` when `count` (this request's, as the script answered it) is past
        the limit; `ttl` is the window's remaining seconds, as the script read them."""
        if count > self.item.amount:
            state = _state(self.item, self.item.amount - count, time.time() + max(ttl, 0))
            raise RateLimited(
                state.reset_after, f"too many requests; retry in {state.reset_after}s", headers=state.headers
            )


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

    def fixed_window(self, rate: str, *key: str) -> FixedWindow:
        """The window `check(rate, *key)` counts on, for a script to count (see `FixedWindow`)."""
        item = parse_rate(rate)
        return FixedWindow(item, f"{NAMESPACE}:{item.key_for(*key)}")

    async def hit(self, rate: str, *key: str) -> LimitState:
        """Count a request against `rate` for `key` on a moving window (logins, registration);
        the state gives the RateLimit headers for the answer."""
        item = parse_rate(rate)
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
        item = parse_rate(rate)
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
