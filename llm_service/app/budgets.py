"""Per-user daily budgets for the remote (paid) providers: requests and tokens per UTC day.

Counters live in Redis, shared by every replica: `jilu:budget:<user>:<yyyymmdd>:requests`
and `...:tokens`, kept two days. `ensure_allowed` is called before a remote call and raises
`RateLimited` (429, `Retry-After` until the next UTC midnight) once a budget is used up;
`record` counts the call and its tokens afterwards; `usage` reads the day's spending for
`GET /api/v1/llm/usage`. Callers that run concurrently for the same user may overshoot by at
most their number (a check is not a reservation), which is the price of never counting a
call that did not happen. The offline provider is free: callers check `provider.is_remote`
before asking.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.errors import RateLimited, ServiceUnavailable
from common.metrics import budget_refused
from llm_service.app.config import LlmSettings

logger = logging.getLogger("jilu.budgets")

KEY_TTL_SECONDS = 2 * 24 * 3600
Budget = Literal["requests", "tokens"]


def budget_key(user_id: str, day: datetime, budget: Budget) -> str:
    return f"jilu:budget:{user_id}:{day:%Y%m%d}:{budget}"


def next_reset(now: datetime) -> datetime:
    """The next UTC midnight after `now`."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


class BudgetExceeded(RateLimited):
    """A user's daily budget for remote LLM calls is used up (429 until the next UTC day)."""

    code = "budget_exceeded"
    error_class = "budget_exceeded"

    def __init__(self, budget: Budget, limit: int, reset_at: datetime, now: datetime) -> None:
        what = "LLM requests" if budget == "requests" else "LLM tokens"
        detail = (
            f"The daily budget of {limit} {what} is used up; it resets at "
            f"{reset_at.isoformat().replace('+00:00', 'Z')} (midnight UTC)"
        )
        super().__init__(math.ceil((reset_at - now).total_seconds()), detail)
        self.budget = budget
        self.reset_at = reset_at
        self.extra = {"budget": budget, "reset_at": reset_at}


@dataclass(frozen=True)
class DailyUsage:
    """What a user has spent today (UTC) against the budgets; a limit of None: that budget is off."""

    requests: int
    request_limit: int | None
    tokens: int
    token_limit: int | None
    resets_at: datetime


class BudgetGuard:
    """The daily request and token budgets of `settings` (`JILU_LLM_DAILY_REQUESTS`,
    `JILU_LLM_DAILY_TOKENS`; 0 turns one off)."""

    def __init__(self, redis: Redis, settings: LlmSettings, *, now: Callable[[], datetime] | None = None) -> None:
        self.redis = redis
        self.daily_requests = settings.llm_daily_requests
        self.daily_tokens = settings.llm_daily_tokens
        self._now = now or (lambda: datetime.now(UTC))

    async def used(self, user_id: str) -> tuple[int, int]:
        """(requests, tokens) the user has spent today."""
        return await self._spent(user_id, self._now())

    async def _spent(self, user_id: str, day: datetime) -> tuple[int, int]:
        # Both counters in one command: a call counted between two reads cannot show its
        # request without its tokens.
        requests, tokens = await self.redis.mget(
            budget_key(user_id, day, "requests"), budget_key(user_id, day, "tokens")
        )
        return int(requests or 0), int(tokens or 0)

    async def usage(self, user_id: str) -> DailyUsage:
        """Today's spending and limits for `user_id`, and the next reset (UTC midnight). Remote
        calls are counted even while a budget is off. Redis away → `ServiceUnavailable`."""
        now = self._now()  # one moment for the day's keys and the reset, even at midnight
        try:
            requests, tokens = await self._spent(user_id, now)
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable("budgets cannot be read right now; try again shortly") from exc
        return DailyUsage(
            requests=requests,
            request_limit=self.daily_requests or None,
            tokens=tokens,
            token_limit=self.daily_tokens or None,
            resets_at=next_reset(now),
        )

    async def ensure_allowed(self, user_id: str) -> None:
        """Raise `BudgetExceeded` (a `RateLimited`) when today's requests or tokens are used up."""
        if not self.daily_requests and not self.daily_tokens:
            return
        now = self._now()
        requests, tokens = await self.used(user_id)
        if self.daily_requests and requests >= self.daily_requests:
            budget_refused("requests")
            raise BudgetExceeded("requests", self.daily_requests, next_reset(now), now)
        if self.daily_tokens and tokens >= self.daily_tokens:
            budget_refused("tokens")
            raise BudgetExceeded("tokens", self.daily_tokens, next_reset(now), now)

    async def record(self, user_id: str, usage_total_tokens: int) -> None:
        """Count one remote call and its tokens against today's budgets. Best effort: with
        Redis away the call goes uncounted (logged), and the answer it paid for is still
        used: failing here would throw it away and make the caller ask, and pay, again."""
        day = self._now()
        requests_key = budget_key(user_id, day, "requests")
        tokens_key = budget_key(user_id, day, "tokens")
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(requests_key)
                pipe.incrby(tokens_key, max(0, int(usage_total_tokens)))
                pipe.expire(requests_key, KEY_TTL_SECONDS)
                pipe.expire(tokens_key, KEY_TTL_SECONDS)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning(
                "could not count %s tokens against the budget of %s: %s",
                usage_total_tokens,
                user_id,
                type(exc).__name__,
            )
