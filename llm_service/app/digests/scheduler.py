"""The background scheduler of llm_service: daily and weekly digests, and memory decay.

Every `interval` seconds each llm_service process tries one run; Redis locks make the work
happen once across all of them:

- digests, under a run lock (`common.queue.RedisLock`: `SET NX EX`, released by its holder,
  extended while it works): for each active user with records recently, yesterday's daily
  digest (their local yesterday) if they had records that day and have none yet, and last
  week's weekly digest (Monday to Sunday) if they had records that week and have none yet —
  on Monday normally, or on the first run after it when the service was down. A digest
  already there is never rewritten, so a run that finds everything done asks no provider
  anything.
- memory decay, once per UTC day: the first run of the day takes that day's key
  (`SET NX`, kept two days) and applies one day of decay and the expiries.

`run_once(now=...)` does one run at a given time: the loop calls it, and so can tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import select

from common.cache import cache_key
from common.database import Sessions, transaction, utcnow
from common.queue import RedisLock
from common.records.models import Record
from common.users.models import User
from llm_service.app.budgets import BudgetGuard
from llm_service.app.config import LlmSettings
from llm_service.app.digests import service
from llm_service.app.digests.schemas import Period
from llm_service.app.memories.service import DecayPolicy, DecayResult, decay
from llm_service.app.providers.base import Provider

logger = logging.getLogger("jilu.scheduler")

DIGEST_LOCK = cache_key("scheduler", "digests")
DECAY_DONE = "scheduler:memory-decay"  # + the UTC date
DECAY_KEY_SECONDS = 2 * 86400
# Users whose records reach back this far may be due a digest (last week, any time zone).
LOOKBACK = timedelta(days=16)

ProviderFor = Callable[[str], Awaitable[Provider]]


@dataclass
class RunReport:
    """What one run did: the digests it wrote, whether another process held the digest lock,
    and the decay it applied (None when it was already done today)."""

    digests: list[str] = field(default_factory=list)
    locked_out: bool = False
    failures: int = 0
    decay: DecayResult | None = None


class Scheduler:
    def __init__(
        self,
        redis: Redis,
        sessions: Sessions,
        provider_for: ProviderFor,
        *,
        interval_seconds: float,
        lock_seconds: int,
        decay_policy: DecayPolicy,
        budgets: BudgetGuard | None = None,
    ) -> None:
        self.redis = redis
        self.sessions = sessions
        self.provider_for = provider_for
        self.interval_seconds = interval_seconds
        self.lock_seconds = lock_seconds
        self.decay_policy = decay_policy
        self.budgets = budgets
        self._task: asyncio.Task[None] | None = None

    async def start(self, stack: AsyncExitStack) -> None:
        """Run in the background every `interval_seconds` (not at all when it is 0)."""
        if self.interval_seconds > 0:
            self._task = asyncio.create_task(self._loop(), name="jilu-scheduler")
            stack.push_async_callback(self.stop)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5)  # bounded: cannot hold up shutdown
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the scheduled run failed")
            await asyncio.sleep(self.interval_seconds)

    async def run_once(self, now: datetime | None = None) -> RunReport:
        """One run at `now` (default: the current time)."""
        now = (now or utcnow()).astimezone(UTC)
        report = RunReport()
        lock = RedisLock(self.redis, DIGEST_LOCK, self.lock_seconds)
        async with lock.held() as got:
            if got:
                await self._write_digests(now, lock, report)
            else:
                report.locked_out = True
        report.decay = await self._decay_memories(now)
        return report

    async def _due_owners(self, now: datetime) -> list[str]:
        """Active users with live records in the last days (the only ones a digest may be due)."""
        statement = (
            select(User.id)
            .join(Record, Record.owner_id == User.id)
            .where(
                User.is_active.is_(True),
                Record.is_deleted.is_(False),
                Record.occurred_at >= now - LOOKBACK,
                Record.occurred_at < now,
            )
            .distinct()
            .order_by(User.id)
        )
        async with self.sessions.read() as session:
            return list((await session.execute(statement)).scalars())

    async def _write_digests(self, now: datetime, lock: RedisLock, report: RunReport) -> None:
        for owner_id in await self._due_owners(now):
            async with self.sessions.read() as session:
                owner = await service.load_owner(session, owner_id)
            today = service.local_today(owner.zone, now)
            last_monday = today - timedelta(days=today.weekday() + 7)
            due: list[tuple[Period, date]] = [("day", today - timedelta(days=1)), ("week", last_monday)]
            for period, day in due:
                try:
                    provider = await self.provider_for(owner_id)
                    digest = await service.write(
                        self.sessions,
                        provider,
                        owner_id,
                        period,
                        day,
                        overwrite=False,
                        skip_empty=True,
                        now=now,
                        budgets=self.budgets,
                    )
                except Exception as exc:  # one user's failure never stops the others'
                    report.failures += 1
                    logger.warning(
                        "%s digest for user %s failed: %s", period, owner_id, type(exc).__name__, exc_info=True
                    )
                    continue
                if digest is not None:
                    report.digests.append(digest.id)
            if not await lock.extend():
                logger.warning("the digest lock was lost mid-run; another process carries on")
                return

    async def _decay_memories(self, now: datetime) -> DecayResult | None:
        key = cache_key(DECAY_DONE, now.date().isoformat())
        if not await self.redis.set(key, "1", nx=True, ex=DECAY_KEY_SECONDS):
            return None
        try:
            async with transaction(self.sessions.write) as session:
                result = await decay(session, self.decay_policy, now=now)
        except BaseException:
            await self.redis.delete(key)  # not done: the next run tries again
            raise
        logger.info(
            "memory decay: %d decayed, %d forgotten, %d expired", result.decayed, result.forgotten, result.expired
        )
        return result


async def start_scheduler(
    settings: LlmSettings,
    redis: Redis,
    sessions: Sessions,
    provider_for: ProviderFor,
    budgets: BudgetGuard,
    stack: AsyncExitStack,
) -> Scheduler:
    """At start-up: the scheduler `settings` describe, running until the app shuts down."""
    scheduler = Scheduler(
        redis,
        sessions,
        provider_for,
        interval_seconds=settings.scheduler_interval_seconds,
        lock_seconds=settings.scheduler_lock_seconds,
        decay_policy=DecayPolicy(factor=settings.memory_decay_factor, floor=settings.memory_decay_floor),
        budgets=budgets,
    )
    await scheduler.start(stack)
    return scheduler
