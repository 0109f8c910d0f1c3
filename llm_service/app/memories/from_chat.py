"""Memories from chat: once a kept conversation's turn is stored, the facts the user stated
in their question are extracted in the background, by the provider that answered it.

Only the user's own words are read, not the answer: an answer quotes records (which have
their own extraction, and which may have opted out of AI when the offline provider quoted
them) and would otherwise turn the assistant's phrasing into "facts about the user".
Ephemeral conversations are never read: leaving no trace beyond Redis is their point.

A remote provider is asked only when the question may state a fact (a sentence that is not
a question and speaks of the user, or asks to remember something): a plain question costs
no second paid request. Extraction never delays the answer or its `done` event and never
fails it: a used-up budget skips it, a provider fault is logged (its class and Jilu's own
detail, never the upstream body) and dropped. Running extractions are kept referenced until
they end; at shutdown they get `SHUTDOWN_GRACE_SECONDS` to finish and are then cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from common.database import Sessions
from common.errors import JiluError
from llm_service.app.budgets import BudgetExceeded, BudgetGuard
from llm_service.app.memories.service import remember_from_text
from llm_service.app.providers.base import Provider
from llm_service.app.providers.local_memories import may_state_facts

logger = logging.getLogger("jilu.memories")

SHUTDOWN_GRACE_SECONDS = 5.0


class ChatMemories:
    """The app's extractor of memories from chat turns (`LlmState.chat_memories`)."""

    def __init__(self, sessions: Sessions, *, short_term: timedelta, budgets: BudgetGuard | None) -> None:
        self.sessions = sessions
        self.short_term = short_term
        self.budgets = budgets
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Extractions started and not yet ended."""
        return len(self._tasks)

    def after_turn(self, provider: Provider, owner_id: str, conversation_id: str, question: str) -> None:
        """Start extracting the facts in `question` (from kept conversation `conversation_id`)
        and return at once."""
        if self._closed or (provider.is_remote and not may_state_facts(question)):
            return
        task = asyncio.create_task(
            self._extract(provider, owner_id, conversation_id, question), name=f"chat-memories-{conversation_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _extract(self, provider: Provider, owner_id: str, conversation_id: str, question: str) -> None:
        try:
            await remember_from_text(
                self.sessions,
                provider,
                owner_id,
                question,
                "chat",
                conversation_id,
                short_term=self.short_term,
                budgets=self.budgets,
            )
        except BudgetExceeded:
            logger.info("skipped extracting memories from conversation %s: the budget is used up", conversation_id)
        except JiluError as exc:  # provider faults: Jilu's own words only, no traceback of upstream bodies
            logger.warning(
                "extracting memories from conversation %s failed: %s (%s)",
                conversation_id,
                exc.code,
                exc.detail,
                extra={"error": exc.code},
            )
        except Exception:  # the database or a bug: worth its traceback
            logger.exception("extracting memories from conversation %s failed", conversation_id)

    async def aclose(self) -> None:
        """Stop taking new extractions; give the running ones a bounded grace, then cancel them."""
        self._closed = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=SHUTDOWN_GRACE_SECONDS)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("cancelled %d memory extractions at shutdown", len(pending))
            await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_SECONDS)
