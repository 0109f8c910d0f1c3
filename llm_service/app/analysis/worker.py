"""The workers that analyse records inside llm_service: the record events
(`common/records/events.py`) read as a durable queue (`common/queue`) by the `analysis`
consumer group, so each edit is analysed once, retried with back-off, and finished after a
crash by whichever worker reclaims it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from redis.asyncio import Redis

from common.api_clients.llm import ProviderError
from common.database import Sessions
from common.queue import DurableQueue, Failed, Job, Workers
from common.queue import Outcome as JobOutcome
from common.records.attachments.storage import AttachmentStorage
from common.records.events import RECORD_EVENTS_STREAM
from llm_service.app.analysis.service import Outcome, analyze_record, mark_failed
from llm_service.app.budgets import BudgetExceeded, BudgetGuard
from llm_service.app.providers.base import Provider

logger = logging.getLogger("jilu.analysis")

GROUP = "analysis"
# Pauses before looking again for a record whose event arrived before its commit.
COMMIT_WAITS = (0.05, 0.2, 0.5)
# Deliveries after which a record that never appeared is given up (its write rolled back).
NOT_YET_DELIVERIES = 5
# Events that ask for no analysis: a deletion, and the news of an analysis itself (which
# would otherwise queue the next one, forever).
NOT_FOR_ANALYSIS = frozenset({"deleted", "analyzed"})

ProviderFor = Callable[[str], Awaitable[Provider]]
# Work after a successful analysis (memory extraction): (provider, record id, version).
AfterAnalysis = Callable[[Provider, str, int], Awaitable[object]]


def _record_of(job: Job) -> tuple[str, int]:
    """The id and version of the record an event is about."""
    return job.fields.get("record_id", ""), int(job.fields.get("version", "0") or 0)


def analysis_queue(redis: Redis) -> DurableQueue:
    """The record events as the analysis workers' queue. The stream is shared (live clients
    read it too) and trimmed by its writer, so entries are acknowledged, never deleted."""
    return DurableQueue(redis, RECORD_EVENTS_STREAM, GROUP, owns_stream=False)


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
        storage: AttachmentStorage | None = None,
    ) -> None:
        self.storage = storage  # where attachments are, for a provider that sees images
        self.redis = redis
        self.after_analysis = after_analysis
        self.budgets = budgets
        self.sessions = sessions
        self.provider_for = provider_for
        self.workers = Workers(
            analysis_queue(redis),
            self.analyse,
            workers=workers,
            max_attempts=max_attempts,
            retry_seconds=retry_seconds,
            give_up=self._give_up,
        )

    async def start(self, stack: AsyncExitStack) -> None:
        """Start the workers until `stack` closes (see `common.queue.Workers.start`)."""
        await self.workers.start(stack)

    async def stop(self) -> None:
        await self.workers.stop()

    async def analyse(self, job: Job) -> JobOutcome:
        """One record event: analyse the record as of the event's version."""
        fields = job.fields
        record_id, version = _record_of(job)
        if fields.get("type") in NOT_FOR_ANALYSIS or fields.get("ai_opt_out") == "1" or not record_id:
            return JobOutcome.DONE
        try:
            provider = await self.provider_for(fields.get("owner_id", ""))
            outcome = await analyze_record(
                self.sessions, self.redis, provider, record_id, version, self.budgets, self.storage
            )
            for pause in COMMIT_WAITS:  # usually the writer commits a moment after its event
                if outcome is not Outcome.NOT_YET:
                    break
                await asyncio.sleep(pause)
                outcome = await analyze_record(
                    self.sessions, self.redis, provider, record_id, version, self.budgets, self.storage
                )
            if outcome is Outcome.DONE and self.after_analysis is not None:
                await self.after_analysis(provider, record_id, version)
        except BudgetExceeded:
            # Retrying cannot help before tomorrow: fail now (a new edit or analyze re-queues).
            await mark_failed(self.sessions, self.redis, record_id, version, BudgetExceeded.error_class)
            return JobOutcome.DONE
        except ProviderError as exc:
            raise Failed(exc.error_class) from exc
        except Exception as exc:
            logger.exception("analysis of record %s failed", record_id)
            raise Failed("internal_error") from exc
        if outcome is Outcome.NOT_YET and job.deliveries < NOT_YET_DELIVERIES:
            return JobOutcome.LATER  # the write has not committed yet: not a failed attempt
        return JobOutcome.DONE

    async def _give_up(self, job: Job, error_class: str) -> None:
        """After the last attempt the record shows `failed` and the error's class."""
        record_id, version = _record_of(job)
        await mark_failed(self.sessions, self.redis, record_id, version, error_class)
