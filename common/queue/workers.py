"""The workers that drain a durable queue (several per process, any number of processes):
each job is done by one worker at a time, retried with back-off, and finished after a crash
by whichever worker reclaims it.

A handler does one job and says how it went:
- it returns `DONE`: the job is acknowledged (also when it can never succeed and the
  handler has recorded that itself);
- it returns `LATER`: the job stays pending and is delivered again after the back-off, and
  this is not counted as a failed attempt (e.g. the data it needs has not committed yet);
- it raises `Failed(reason)` (or any other exception): a failed attempt. The job stays
  pending for a retry after the back-off; after `max_attempts` failed attempts the
  `give_up(job, reason)` hook runs and the job is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from enum import Enum

from redis.exceptions import RedisError

from common.metrics import job_attempt
from common.queue.stream import DurableQueue, Job

logger = logging.getLogger("jilu.queue")

# An entry idle this long is not being worked on: its worker heartbeats five times as often
# (every second), so a slow Redis call or a busy event loop does not hand a live job over.
ORPHANED_AFTER_MS = 5_000
HEARTBEATS_PER_ORPHAN_WINDOW = 5
READ_BLOCK_MS = 1_000
RECLAIM_EVERY_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 5.0
STOP_POLL_SECONDS = 0.05
# A finished job whose acknowledgement Redis refused (it is away) is acknowledged again after
# these pauses, doubling up to the last, until Redis takes it.
ACK_RETRY_FIRST_SECONDS, ACK_RETRY_MAX_SECONDS = 0.1, 0.5
# The reason given to `give_up` when a handler raised something other than `Failed`.
INTERNAL_ERROR = "internal_error"


class Outcome(Enum):
    DONE = "done"
    LATER = "later"


class Failed(Exception):
    """One attempt at a job failed; `reason` is short and safe to store or show (an error
    class, never a provider's text)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Handler = Callable[[Job], Awaitable[Outcome]]
GiveUp = Callable[[Job, str], Awaitable[object]]


def consumer_prefix() -> str:
    """This process's consumer names start with host and pid, so they differ across replicas."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Workers:
    """`workers` readers of `queue` and one reclaimer, running `handle` on each job."""

    def __init__(
        self,
        queue: DurableQueue,
        handle: Handler,
        *,
        workers: int,
        max_attempts: int,
        retry_seconds: float,
        give_up: GiveUp | None = None,
        orphaned_after_ms: int = ORPHANED_AFTER_MS,
    ) -> None:
        self.queue = queue
        self.handle = handle
        self.give_up = give_up
        self.workers = workers
        self.max_attempts = max_attempts
        self.retry_ms = int(retry_seconds * 1000)
        self.orphaned_after_ms = orphaned_after_ms
        self.heartbeat_seconds = orphaned_after_ms / 1000 / HEARTBEATS_PER_ORPHAN_WINDOW
        self.name = f"{consumer_prefix()}-{queue.group}"
        self._tasks: list[asyncio.Task[None]] = []
        # Entries this process is working on, or finished and acknowledging: never reclaimed
        # here. While Redis is away their heartbeats fail, so once it is back they look
        # orphaned; taken over here they would be done twice (a second provider call, paid for).
        self._mine: set[str] = set()

    def backoff_ms(self, deliveries: int) -> int:
        """Idle time after which a job delivered `deliveries` times is taken up again: the
        retry delay doubling with each delivery, never less than the time that tells a
        heartbeating worker from a dead one."""
        return max(self.orphaned_after_ms, self.retry_ms * 2 ** max(0, deliveries - 1))

    async def start(self, stack: AsyncExitStack) -> None:
        """Start the workers, stopped when `stack` closes; they wait for Redis if it is not
        there yet (the service still starts, and its readiness check says what is missing)."""
        self._tasks = [asyncio.create_task(self._read_loop(f"{self.name}-{i}")) for i in range(self.workers)]
        self._tasks.append(asyncio.create_task(self._reclaim_loop(f"{self.name}-reclaim")))
        stack.push_async_callback(self.stop)

    async def stop(self) -> None:
        """Cancel the workers; a job cut short stays pending and is reclaimed later. Bounded,
        so a worker stuck in a Redis call cannot hold up the service's shutdown."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT_SECONDS
        pending = set(self._tasks)
        while pending and loop.time() < deadline:
            # Cancelled again until they end: redis-py can swallow the cancellation of a
            # blocking read and read on (every llm_service stop took the whole 5 s).
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=STOP_POLL_SECONDS)
        self._tasks = []

    async def _read_loop(self, consumer: str) -> None:
        group_ready = False
        while True:
            try:
                if not group_ready:
                    await self.queue.ensure_group()
                    group_ready = True
                job = await self.queue.read(consumer, READ_BLOCK_MS)
                if job is not None:
                    await self.run(consumer, job)
            except asyncio.CancelledError:
                raise
            except Exception:  # a Redis hiccup must not end the worker
                logger.exception("%s worker %s: reading the queue failed", self.queue.group, consumer)
                group_ready = False  # e.g. Redis came back empty: make the group again
                await asyncio.sleep(1)

    async def _reclaim_loop(self, consumer: str) -> None:
        while True:
            try:
                for job in await self.queue.reclaim(consumer, self.backoff_ms, skip=self._mine):
                    await self.run(consumer, job)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s: reclaiming pending jobs failed", self.queue.group)
            await asyncio.sleep(RECLAIM_EVERY_SECONDS)

    async def run(self, consumer: str, job: Job) -> None:
        """Do one job as `consumer`: acknowledge it when finished (retried while Redis is
        away), leave it pending to be retried. An error of Redis in counting a failed attempt
        propagates (the job stays pending)."""
        self._mine.add(job.entry_id)
        try:
            await self._run(consumer, job)
        finally:
            self._mine.discard(job.entry_id)

    async def _run(self, consumer: str, job: Job) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(consumer, job))
        started = time.perf_counter()
        try:
            outcome = await self.handle(job)
        except Failed as exc:
            await self._failed(job, exc.reason, time.perf_counter() - started)
            return
        except Exception:
            logger.exception("%s job %s failed", self.queue.group, job.entry_id)
            await self._failed(job, INTERNAL_ERROR, time.perf_counter() - started)
            return
        finally:
            heartbeat.cancel()
            # gather, not `suppress(CancelledError)`: a cancel of this task itself (shutdown)
            # must go on propagating, only the heartbeat's own cancellation is expected.
            await asyncio.gather(heartbeat, return_exceptions=True)
        if outcome is Outcome.DONE:
            await self._acknowledge(job)
        job_attempt(self.queue.group, outcome.value, time.perf_counter() - started)

    async def _acknowledge(self, job: Job) -> None:
        """Acknowledge a finished job, retrying while Redis is away: were it left pending, it
        would be reclaimed once Redis is back and done a second time (a second provider call,
        paid for). Meanwhile this process's reclaimer leaves it alone. Cut short only by the
        service stopping (then it is done again after the restart: at least once)."""
        delay = ACK_RETRY_FIRST_SECONDS
        while True:
            try:
                await self.queue.ack(job)
                return
            except (RedisError, OSError) as exc:  # Redis away: the job is done, its ack waits
                if delay == ACK_RETRY_FIRST_SECONDS:
                    logger.warning(
                        "%s job %s is done but cannot be acknowledged (%s); retrying until Redis answers",
                        self.queue.group,
                        job.entry_id,
                        type(exc).__name__,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, ACK_RETRY_MAX_SECONDS)

    async def _failed(self, job: Job, reason: str, seconds: float) -> None:
        attempts = await self.queue.count_failure(job)
        if attempts < self.max_attempts:
            job_attempt(self.queue.group, "failed", seconds)
            logger.warning(
                "%s job %s failed (%s), attempt %d of %d; will retry",
                self.queue.group,
                job.entry_id,
                reason,
                attempts,
                self.max_attempts,
            )
            return
        if self.give_up is not None:
            await self.give_up(job, reason)
        await self.queue.ack(job)
        job_attempt(self.queue.group, "given_up", seconds)

    async def _heartbeat(self, consumer: str, job: Job) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            with contextlib.suppress(Exception):
                await self.queue.heartbeat(consumer, job)
