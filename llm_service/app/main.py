"""llm_service's app: every LLM application (internal; reached through web and mobile)."""

from contextlib import AsyncExitStack
from datetime import timedelta
from typing import cast

from fastapi import FastAPI

from common.api_clients.llm import create_llm_http_client
from common.app import create_service_app
from common.records.attachments.storage import AttachmentStorage
from common.state import ServiceState, state_fields
from llm_service.app.analysis.routes import router as analysis_router
from llm_service.app.analysis.worker import AnalysisWorkers
from llm_service.app.budgets import BudgetGuard
from llm_service.app.chat.routes import router as chat_router
from llm_service.app.chat.service import ChatService
from llm_service.app.config import LlmSettings, get_settings
from llm_service.app.digests.routes import router as digests_router
from llm_service.app.digests.scheduler import start_scheduler
from llm_service.app.extraction.setup import start_extraction
from llm_service.app.llm_config.routes import router as llm_config_router
from llm_service.app.memories.from_chat import ChatMemories
from llm_service.app.memories.routes import router as memories_router
from llm_service.app.memories.service import extraction_after_analysis
from llm_service.app.providers.registry import ProviderRegistry
from llm_service.app.state import LlmState

__all__ = ["create_app", "get_settings"]


async def _build_state(base: ServiceState, stack: AsyncExitStack) -> LlmState:
    """llm_service's start-up: its providers, budgets, chat, analysis and extraction workers
    and scheduler."""
    settings = cast(LlmSettings, base.settings)  # create_app takes only LlmSettings
    llm_http = create_llm_http_client(settings.llm_allowed_hosts, timeout=settings.http_timeout)
    stack.push_async_callback(llm_http.aclose)
    providers = ProviderRegistry(settings, llm_http, base.sessionmaker)
    budgets = BudgetGuard(base.redis, settings)
    sessions = base.sessions
    short_term = timedelta(days=settings.memory_short_term_days)
    # Closed before the HTTP client (callbacks run last in, first out): extractions still
    # running get a bounded grace while their provider can still answer.
    chat_memories = ChatMemories(sessions, short_term=short_term, budgets=budgets)
    stack.push_async_callback(chat_memories.aclose)
    chat = ChatService(settings, base.redis, sessions, providers, base.rate_limiter, chat_memories, budgets=budgets)
    analysis = AnalysisWorkers(
        base.redis,
        sessions,
        providers.for_user,
        workers=settings.analysis_workers,
        max_attempts=settings.analysis_max_attempts,
        retry_seconds=settings.analysis_retry_seconds,
        budgets=budgets,
        after_analysis=extraction_after_analysis(sessions, short_term, budgets),
        storage=AttachmentStorage(settings.data_dir),
    )
    await analysis.start(stack)
    extraction = await start_extraction(settings, base.redis, sessions, providers, budgets, stack)
    scheduler = await start_scheduler(settings, base.redis, sessions, providers.for_user, budgets, stack)
    return LlmState(
        **state_fields(base),
        providers=providers,
        budgets=budgets,
        chat_memories=chat_memories,
        chat=chat,
        analysis=analysis,
        extraction=extraction,
        scheduler=scheduler,
    )


def create_app(settings: LlmSettings | None = None) -> FastAPI:
    return create_service_app(
        "llm_service",
        settings or get_settings(),
        routers=[analysis_router, chat_router, llm_config_router, memories_router, digests_router],
        build_state=_build_state,
        description="Chat, record analysis, memories, digests and provider settings.",
    )
