"""llm_service's state, built by its lifespan (`llm_service.app.main`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from common.queue import DurableQueue
from common.state import ServiceState
from llm_service.app.analysis.worker import AnalysisWorkers
from llm_service.app.budgets import BudgetGuard
from llm_service.app.chat.service import ChatService
from llm_service.app.config import LlmSettings
from llm_service.app.digests.scheduler import Scheduler
from llm_service.app.extraction.worker import ExtractionWorkers
from llm_service.app.memories.from_chat import ChatMemories
from llm_service.app.providers.registry import ProviderRegistry


@dataclass(frozen=True, kw_only=True)
class LlmState(ServiceState):
    """The common state, and what answers with a model: one of each per process."""

    settings: LlmSettings
    providers: ProviderRegistry
    budgets: BudgetGuard
    chat_memories: ChatMemories
    chat: ChatService
    analysis: AnalysisWorkers
    extraction: ExtractionWorkers
    scheduler: Scheduler

    def metric_queues(self) -> Sequence[DurableQueue]:
        """The analysis and extraction queues its workers drain."""
        return (self.analysis.workers.queue, self.extraction.workers.queue)
