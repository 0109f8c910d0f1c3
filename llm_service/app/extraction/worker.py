"""The extraction workers inside llm_service: the extraction jobs (`common.records.extraction`)
read as a durable queue (`common.queue`) by the `extraction` consumer group, each target read
once, retried with back-off, finished after a crash by whichever worker reclaims it. A
sweeper queues again what a Redis that restarted empty forgot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import or_, select

from common.database import Sessions, transaction
from common.errors import JiluError
from common.queue import Failed, Job, Outcome, RedisLock, Workers
from common.queue.workers import ORPHANED_AFTER_MS
from common.records.extraction import Target, enqueue, extraction_queue
from common.records.models import Attachment, Record
from llm_service.app.extraction import store
from llm_service.app.extraction.engines import Engines
from llm_service.app.extraction.results import ExtractionFailed
from llm_service.app.providers.base import Provider

logger = logging.getLogger("jilu.extraction")

# Pauses before looking again for a target whose job arrived before its write committed (jobs
# are queued inside the writing transaction); without them it waits out the orphan window.
COMMIT_WAITS = (0.05, 0.2, 0.5)
# Deliveries after which a target that never appeared is given up (its write rolled back).
NOT_YET_DELIVERIES = 5
# A pending extraction queued this long ago with no worker on it lost its job (Redis
# restarted empty): the sweeper queues it again (a duplicate job does nothing twice).
LOST_AFTER = timedelta(minutes=2)
SWEEP_EVERY_SECONDS = 60.0
SWEEP_BATCH = 200
SWEEP_LOCK = "extraction:sweep"

ProviderFor = Callable[[str], Awaitable[Provider]]


class ExtractionWorkers:
    def __init__(
        self,
        redis: Redis,
        sessions: Sessions,
        engines: Engines,
        *,
        workers: int,
        max_attempts: int,
        retry_seconds: float,
        orphaned_after_ms: int = ORPHANED_AFTER_MS,
    ) -> None:
        self.redis = redis
        self.sessions = sessions
        self.engines = engines
        self.workers = Workers(
            extraction_queue(redis),
            self.extract,
            workers=workers,
            max_attempts=max_attempts,
            retry_seconds=retry_seconds,
            give_up=self._give_up,
            orphaned_after_ms=orphaned_after_ms,
        )
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, stack: AsyncExitStack) -> None:
        """Start the workers and the sweeper until `stack` closes."""
        await self.workers.start(stack)
        self._sweeper = asyncio.create_task(self._sweep_loop())
        stack.push_async_callback(self._stop_sweeper)

    async def extract(self, job: Job) -> Outcome:
        """One job: claim its target, read it with the engine for its kind, store the result."""
        target, target_id = _target_of(job)
        if target is None:
            return Outcome.DONE
        claimed = await store.claim(self.sessions, self.redis, target, target_id, reclaimed=job.deliveries > 1)
        for pause in COMMIT_WAITS:  # usually the writer commits a moment after queueing the job
            if claimed is not store.Claim.NOT_YET:
                break
            await asyncio.sleep(pause)
            claimed = await store.claim(self.sessions, self.redis, target, target_id, reclaimed=job.deliveries > 1)
        if claimed is store.Claim.NOT_YET:
            return Outcome.LATER if job.deliveries < NOT_YET_DELIVERIES else Outcome.DONE
        if not isinstance(claimed, store.Claimed):
            return Outcome.DONE
        try:
            result = await self.engines.read(claimed)
        except ExtractionFailed as exc:
            raise Failed(exc.reason) from exc
        stored = await store.finish(self.sessions, self.redis, claimed, result)
        logger.info("read %s %s with %s: %s", target, target_id, result.engine, result.status)
        preview = result.details.get("preview_image_url")
        if stored and claimed.target == "record" and isinstance(preview, str):
            await self._attach_preview(claimed, preview)
        return Outcome.DONE

    async def _attach_preview(self, claimed: store.Claimed, url: str) -> None:
        """The link page's preview image, stored as an attachment of the record through the
        upload's own checks. Best effort: the page was read either way."""
        try:
            data, _ = await self.engines.links.fetch_image(url)
            await store.attach_preview(self.sessions, self.redis, self.engines.storage, claimed, data)
        except (ExtractionFailed, JiluError) as exc:
            logger.info("no preview image for record %s: %s", claimed.id, exc)

    async def _give_up(self, job: Job, reason: str) -> None:
        """After the last attempt the target shows `failed` and the reason."""
        target, target_id = _target_of(job)
        if target is None:
            return
        claimed = await store.claim(self.sessions, self.redis, target, target_id, reclaimed=True)
        if isinstance(claimed, store.Claimed):
            await store.fail(self.sessions, self.redis, claimed, _shown_reason(reason))

    async def sweep(self) -> int:
        """Queue again the pending extractions whose job is long overdue; how many."""
        cutoff = datetime.now(UTC) - LOST_AFTER
        queued = 0
        async with transaction(self.sessions.read) as session:
            models: tuple[type[Attachment] | type[Record], ...] = (Attachment, Record)
            for model in models:
                overdue = select(model).where(
                    model.extraction_status == "pending",
                    or_(model.extraction_requested_at.is_(None), model.extraction_requested_at < cutoff),
                )
                for target in (await session.execute(overdue.limit(SWEEP_BATCH))).scalars():
                    assert isinstance(target, Attachment | Record)
                    await enqueue(self.redis, target)
                    queued += 1
        return queued

    async def _sweep_loop(self) -> None:
        lock = RedisLock(self.redis, SWEEP_LOCK, ttl=int(SWEEP_EVERY_SECONDS))
        while True:
            try:
                if await lock.acquire():  # one sweeper across replicas; the lock expires by itself
                    if queued := await self.sweep():
                        logger.info("queued %d overdue extraction(s) again", queued)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("sweeping overdue extractions failed")
            await asyncio.sleep(SWEEP_EVERY_SECONDS)

    async def _stop_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)


def _target_of(job: Job) -> tuple[Target | None, str]:
    target = job.fields.get("target")
    target_id = job.fields.get("id", "")
    if target not in ("attachment", "record") or not target_id:
        return None, ""
    return target, target_id  # type: ignore[return-value]


def _shown_reason(reason: str) -> str:
    """A failed job's reason as clients see it: an engine's own words, or the error's class."""
    return "reading it failed (internal error)" if reason == "internal_error" else reason
