"""The workers that drain the analysis queue inside llm_service (several per process, any
number of processes): each job is done once, retried with back-off, and finished after a
crash by whichever worker reclaims it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from redis.asyncio import Redis

from common.api_clients.llm import ProviderError
from llm_service.app.analysis.queue import AnalysisQueue, Job
from llm_service.app.analysis.service import Outcome, Sessions, analyze_record, mark_failed
from llm_service.app.budgets import BudgetExceeded, BudgetGuard
from llm_service.app.providers.base import Provider

logger = logging.getLogger("jilu.analysis")

HEARTBEAT_SECONDS = 1.0
# An entry idle this long is not being worked on (its worker heartbeats every second).
ORPHANED_AFTER_MS = 5_000
READ_BLOCK_MS = 1_000
STOP_TIMEOUT_SECONDS = 5.0
# Pauses before looking again for a record whose event arrived before its commit.
COMMIT_WAITS = (0.05, 0.2, 0.5)
# Deliveries after which a record that never appeared is given up (its write rolled back).
NOT_YET_DELIVERIES = 5
RECLAIM_EVERY_SECONDS = 1.0
# Events that ask for no analysis: a deletion, and the news of an analysis itself (which
# would otherwise queue the next one, forever).
NOT_FOR_ANALYSIS = frozenset({"deleted", "analyzed"})

ProviderFor = Callable[[str], Awaitable[Provider]]
# Work after a successful analysis (memory extraction): (provider, record id, version).
AfterAnalysis = Callable[[Provider, str, int], Awaitable[object]]


class AnalysisWorkers:
    def __init__(
        self,
        redis: Redis,
        sessions: Sessions,
        provider_for: ProviderFor,
        *,
        workers: int,
        max_attempts: int,
        retry_seconds: float,
        budgets: BudgetGuard | None = None,
        after_analysis: AfterAnalysis | None = None,
    ) -> None:
        self.queue = AnalysisQueue(redis)
        self.after_analysis = after_analysis
        self.budgets = budgets
        self.sessions = sessions
        self.provider_for = provider_for
        self.workers = workers
        self.max_attempts = max_attempts
        self.retry_ms = int(retry_seconds * 1000)
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self._tasks: list[asyncio.Task[None]] = []

    def backoff_ms(self, deliveries: int) -> int:
        """Idle time after which a job delivered `deliveries` times is taken up again."""
        return max(ORPHANED_AFTER_MS, self.retry_ms * 2 ** max(0, deliveries - 1))

    async def start(self, stack: AsyncExitStack) -> None:
        """Start the workers; they wait for Redis if it is not there yet (the service still
        starts, and its readiness check says what is missing)."""
        self._tasks = [asyncio.create_task(self._read_loop(f"{self.name}-{i}")) for i in range(self.workers)]
        self._tasks.append(asyncio.create_task(self._reclaim_loop(f"{self.name}-reclaim")))
        stack.push_async_callback(self.stop)

    async def stop(self) -> None:
        """Cancel the workers; a job cut short stays pending and is reclaimed later. Bounded,
        so a worker stuck in a Redis call cannot hold up the service's shutdown."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_SECONDS)
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
                logger.exception("analysis worker %s: reading the queue failed", consumer)
                group_ready = False  # e.g. Redis came back empty: make the group again
                await asyncio.sleep(1)

    async def _reclaim_loop(self, consumer: str) -> None:
        while True:
            try:
                for job in await self.queue.reclaim(consumer, self.backoff_ms):
                    await self.run(consumer, job)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("analysis: reclaiming pending jobs failed")
            await asyncio.sleep(RECLAIM_EVERY_SECONDS)

    async def run(self, consumer: str, job: Job) -> None:
        """Do one job; acknowledge it when finished, leave it pending to be retried."""
        if job.fields.get("type") in NOT_FOR_ANALYSIS or job.fields.get("ai_opt_out") == "1" or not job.record_id:
            await self.queue.ack(job)
            return
        heartbeat = asyncio.create_task(self._heartbeat(consumer, job))
        try:
            provider = await self.provider_for(job.fields.get("owner_id", ""))
            outcome = await analyze_record(
                self.sessions, self.queue.redis, provider, job.record_id, job.version, self.budgets
            )
            for pause in COMMIT_WAITS:  # usually the writer commits a moment after its event
                if outcome is not Outcome.NOT_YET:
                    break
                await asyncio.sleep(pause)
                outcome = await analyze_record(
                    self.sessions, self.queue.redis, provider, job.record_id, job.version, self.budgets
                )
            if outcome is Outcome.DONE and self.after_analysis is not None:
                await self.after_analysis(provider, job.record_id, job.version)
        except BudgetExceeded:
            # Retrying cannot help before tomorrow: fail now (a new edit or analyze re-queues).
            await mark_failed(self.sessions, self.queue.redis, job.record_id, job.version, BudgetExceeded.error_class)
            await self.queue.ack(job)
            return
        except ProviderError as exc:
            await self._failed(job, exc.error_class)
            return
        except Exception:
            logger.exception("analysis of record %s failed", job.record_id)
            await self._failed(job, "internal_error")
            return
        finally:
            heartbeat.cancel()
            # gather, not `suppress(CancelledError)`: a cancel of this task itself (shutdown)
            # must go on propagating, only the heartbeat's own cancellation is expected.
            await asyncio.gather(heartbeat, return_exceptions=True)
        if outcome is Outcome.NOT_YET and job.deliveries < NOT_YET_DELIVERIES:
            return  # the write has not committed yet: the reclaimer tries again (not an attempt)
        await self.queue.ack(job)

    async def _failed(self, job: Job, error_class: str) -> None:
        attempts = await self.queue.count_failure(job)
        if attempts < self.max_attempts:
            logger.warning(
                "analysis of record %s failed (%s), attempt %d of %d; will retry",
                job.record_id,
                error_class,
                attempts,
                self.max_attempts,
            )
            return
        await mark_failed(self.sessions, self.queue.redis, job.record_id, job.version, error_class)
        await self.queue.ack(job)

    async def _heartbeat(self, consumer: str, job: Job) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            with contextlib.suppress(Exception):
                await self.queue.heartbeat(consumer, job)
