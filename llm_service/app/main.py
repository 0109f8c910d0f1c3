"""llm_service's app: every LLM application (internal; reached through web and mobile)."""

from contextlib import AsyncExitStack
from datetime import timedelta

from fastapi import FastAPI

from common.api_clients.llm import create_llm_http_client
from common.app import create_service_app
from llm_service.app.analysis.routes import router as analysis_router
from llm_service.app.analysis.service import Sessions
from llm_service.app.analysis.worker import AnalysisWorkers
from llm_service.app.budgets import BudgetGuard
from llm_service.app.chat.routes import router as chat_router
from llm_service.app.chat.service import ChatService
from llm_service.app.config import LlmSettings, get_settings
from llm_service.app.digests.routes import router as digests_router
from llm_service.app.digests.scheduler import start_scheduler
from llm_service.app.llm_config.routes import router as llm_config_router
from llm_service.app.memories.from_chat import ChatMemories
from llm_service.app.memories.routes import router as memories_router
from llm_service.app.memories.service import extraction_after_analysis
from llm_service.app.providers.registry import ProviderRegistry

__all__ = ["create_app", "get_settings"]


async def _start_providers_and_workers(app: FastAPI, stack: AsyncExitStack) -> None:
    settings: LlmSettings = app.state.settings
    llm_http = create_llm_http_client(settings.llm_allowed_hosts, timeout=settings.http_timeout)
    stack.push_async_callback(llm_http.aclose)
    app.state.providers = ProviderRegistry(settings, llm_http, app.state.sessionmaker)
    app.state.budgets = BudgetGuard(app.state.redis, settings)
    sessions = Sessions(read=app.state.sessionmaker, write=app.state.write_sessionmaker)
    short_term = timedelta(days=settings.memory_short_term_days)
    # Closed before the HTTP client (callbacks run last in, first out): extractions still
    # running get a bounded grace while their provider can still answer.
    app.state.chat_memories = ChatMemories(sessions, short_term=short_term, budgets=app.state.budgets)
    stack.push_async_callback(app.state.chat_memories.aclose)
    app.state.chat = ChatService(app.state)
    app.state.analysis = AnalysisWorkers(
        app.state.redis,
        sessions,
        app.state.providers.for_user,
        workers=settings.analysis_workers,
        max_attempts=settings.analysis_max_attempts,
        retry_seconds=settings.analysis_retry_seconds,
        budgets=app.state.budgets,
        after_analysis=extraction_after_analysis(sessions, short_term, app.state.budgets),
    )
    await app.state.analysis.start(stack)


def create_app(settings: LlmSettings | None = None) -> FastAPI:
    return create_service_app(
        "llm_service",
        settings or get_settings(),
        routers=[analysis_router, chat_router, llm_config_router, memories_router, digests_router],
        on_startup=[_start_providers_and_workers, start_scheduler],
        description="Chat, record analysis, memories, digests and provider settings.",
    )
