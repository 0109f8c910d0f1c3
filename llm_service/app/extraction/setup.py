"""Starting extraction in llm_service's lifespan: the OCR pool, the link fetcher, the engines
and the workers, all stopped when the service stops."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from redis.asyncio import Redis

from common.database import Sessions
from common.records.attachments.storage import AttachmentStorage
from llm_service.app.budgets import BudgetGuard
from llm_service.app.config import LlmSettings
from llm_service.app.extraction.engines import Engines
from llm_service.app.extraction.links import LinkFetcher
from llm_service.app.extraction.ocr import OcrPool
from llm_service.app.extraction.worker import ExtractionWorkers
from llm_service.app.providers.registry import ProviderRegistry

MB = 1024 * 1024


async def start_extraction(
    settings: LlmSettings,
    redis: Redis,
    sessions: Sessions,
    providers: ProviderRegistry,
    budgets: BudgetGuard,
    stack: AsyncExitStack,
) -> ExtractionWorkers:
    """The extraction workers of this process, running until `stack` closes."""
    ocr = OcrPool(max_workers=settings.ocr_processes)
    # Off the event loop: closing waits for an image being read.
    stack.push_async_callback(asyncio.to_thread, ocr.close)
    links = LinkFetcher(
        allowed_hosts=settings.link_allowed_hosts,
        max_bytes=settings.link_max_mb * MB,
        timeout=settings.link_timeout_seconds,
    )
    stack.push_async_callback(links.aclose)
    engines = Engines(
        sessions,
        AttachmentStorage(settings.data_dir),
        ocr,
        links,
        providers.for_user,
        budgets,
        max_ocr_pages=settings.extraction_max_ocr_pages,
        max_audio_bytes=settings.extraction_max_audio_mb * MB,
    )
    workers = ExtractionWorkers(
        redis,
        sessions,
        engines,
        workers=settings.extraction_workers,
        max_attempts=settings.extraction_max_attempts,
        retry_seconds=settings.extraction_retry_seconds,
    )
    await workers.start(stack)
    return workers
