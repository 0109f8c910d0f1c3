"""Chat: conversations (kept or ephemeral) and grounded answers, whole or streamed.

A turn is stored whole: the question and its answer are written together once the answer
is complete. An answer that fails or is abandoned (the client went away) stores nothing,
so asking again never leaves a question twice in the history.

No database transaction is held while the provider answers (a write transaction on SQLite
holds the write lock): the grounding is read in a short read session, the answer comes
with no session open, and the turn is written in its own short transaction.

Once a turn of a kept conversation is stored, the facts the user stated in the question are
extracted as memories in the background (`memories/from_chat.py`); ephemeral conversations
leave no memories.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from common import draining
from common.api_clients.llm.errors import ProviderBadResponse, ProviderTimeout
from common.api_clients.llm.results import TokenUsage
from common.database import Sessions, transaction
from common.errors import Conflict, JiluError, NotFound, ServiceUnavailable
from common.pagination import Page, decode_cursor
from common.security.rate_limit import RateLimiter
from llm_service.app.budgets import BudgetGuard
from llm_service.app.chat import store
from llm_service.app.chat.ephemeral import MAX_EPHEMERAL_PER_USER, EphemeralStore
from llm_service.app.chat.grounding import build_context, find_sources
from llm_service.app.chat.idle import IdleTimeout
from llm_service.app.chat.repository import ConversationRepository
from llm_service.app.chat.schemas import ChatMessagePublic, ConversationCreate, ConversationPublic
from llm_service.app.chat.store import ConversationRef, NewTurn, StoredMessage
from llm_service.app.config import LlmSettings
from llm_service.app.memories.from_chat import ChatMemories
from llm_service.app.providers.base import AnswerChunk, ChatContext, ChatTurn, Provider
from llm_service.app.providers.registry import ProviderRegistry

logger = logging.getLogger("jilu.chat")

CHAT_RATE = "30/minute"  # questions per user: each one may cost a paid provider call
HEARTBEAT_SECONDS = 10.0  # a `: ping` comment while the provider is quiet keeps proxies open
TITLE_CHARS = 40
# Conversation ids go into Redis keys: anything else is simply not found.
_CONVERSATION_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
# Tasks that outlive the request that started them (a provider stream closing after its
# client left, a turn being stored), kept referenced until they end.
_background: set[asyncio.Task[Any]] = set()


def _keep(task: asyncio.Task[Any]) -> None:
    _background.add(task)
    task.add_done_callback(_forget)


def _settle(task: asyncio.Future[Any]) -> None:
    """Cancel `task` if it still runs; its failure, when nobody awaited it, is not logged as
    never retrieved (the failure that ended the request is the one that counts)."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


def _forget(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("storing a chat turn failed after its client left", exc_info=task.exception())


@dataclass(frozen=True)
class Turn:
    """A question about to be answered, with everything the answer may draw on."""

    user_id: str
    conversation: ConversationRef
    question: StoredMessage
    provider: Provider
    context: ChatContext


def title_from(question: str) -> str:
    line = " ".join(question.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


# `json.dumps(..., ensure_ascii=False)` builds a new encoder per call: once per streamed delta.
_SSE_JSON = json.JSONEncoder(ensure_ascii=False)


def sse_event(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {_SSE_JSON.encode(data)}\n\n".encode()


PING = b": ping\n\n"


class _Draining:
    """Put in a stream's queue when the service starts shutting down (`common.draining`)."""


_DRAINING = _Draining()
SHUTTING_DOWN = "The service is shutting down: ask again in a moment"


@asynccontextmanager
async def _closing(iterator: AsyncIterator[AnswerChunk]) -> AsyncIterator[AsyncIterator[AnswerChunk]]:
    """Close a provider's stream however its reader stops: that closes the upstream
    connection, which cancels the provider's work."""
    try:
        yield iterator
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


class ChatService:
    """One per process, made at start-up (see `llm_service.app.main`)."""

    def __init__(
        self,
        settings: LlmSettings,
        redis: Redis,
        sessions: Sessions,
        providers: ProviderRegistry,
        rate_limiter: RateLimiter,
        memories: ChatMemories,
        *,
        budgets: BudgetGuard | None = None,  # per-user budgets for paid providers
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.read_sessions = sessions.read
        self.write_sessions = sessions.write
        self.providers = providers
        self.rate_limiter = rate_limiter
        self.budgets = budgets
        self.memories = memories
        self.ephemeral = EphemeralStore(self.redis, self.settings.chat_ttl)
        self.context_cache = store.ContextCache(self.redis)
        # The longest a provider may stay silent before the answer counts as timed out.
        self.idle_timeout = float(self.settings.http_timeout)

    # -- conversations -----------------------------------------------------------------

    async def find(self, session: AsyncSession, owner_id: str, conversation_id: str) -> ConversationRef:
        """The caller's conversation (an ephemeral one's expiry slides forward); anything
        else, someone else's included, is 404."""
        if _CONVERSATION_ID.fullmatch(conversation_id):
            ref = await self.ephemeral.get(owner_id, conversation_id)
            if ref is None:
                ref = await ConversationRepository(session, owner_id).find(conversation_id)
            if ref is not None:
                return ref
        raise NotFound("no such conversation")

    async def list_conversations(
        self, session: AsyncSession, owner_id: str, limit: int, cursor: str | None
    ) -> Page[ConversationPublic]:
        """Kept and live ephemeral conversations together, by last use, newest first."""
        position = decode_cursor(cursor) if cursor else None
        kept = await ConversationRepository(session, owner_id).refs(position, limit + 1)
        ephemeral = await self.ephemeral.live(owner_id)
        page, next_cursor = store.after_cursor([*kept, *ephemeral], position, limit)
        return Page(items=[ref.public() for ref in page], next_cursor=next_cursor)

    async def create(self, session: AsyncSession, owner_id: str, data: ConversationCreate) -> ConversationRef:
        title = data.title or ""
        if not data.ephemeral:
            return await ConversationRepository(session, owner_id).create(title)
        if len(await self.ephemeral.live(owner_id)) >= MAX_EPHEMERAL_PER_USER:
            raise Conflict(
                f"at most {MAX_EPHEMERAL_PER_USER} ephemeral conversations at once; delete one or let it expire"
            )
        return await self.ephemeral.create(owner_id, title)

    async def rename(self, session: AsyncSession, ref: ConversationRef, title: str) -> ConversationRef:
        if ref.ephemeral:
            return await self.ephemeral.rename(ref, title)
        return await ConversationRepository(session, ref.owner_id).rename(ref.id, title)

    async def delete(self, session: AsyncSession, ref: ConversationRef) -> None:
        if ref.ephemeral:
            await self.ephemeral.delete(ref)
            return
        await ConversationRepository(session, ref.owner_id).delete(ref.id)
        await self.context_cache.drop(ref.id)

    async def messages(
        self, session: AsyncSession, ref: ConversationRef, limit: int, cursor: str | None
    ) -> Page[ChatMessagePublic]:
        """A page of the conversation's messages, newest first."""
        position = decode_cursor(cursor) if cursor else None
        if ref.ephemeral:
            page, next_cursor = store.after_cursor(await self.ephemeral.messages(ref), position, limit)
        else:
            rows = await ConversationRepository(session, ref.owner_id).messages(ref.id, position, limit + 1)
            page, next_cursor = store.after_cursor(rows, None, limit)
        return Page(items=[message.public() for message in page], next_cursor=next_cursor)

    # -- answers -----------------------------------------------------------------------

    async def start_turn(self, user_id: str, conversation_id: str, question: str) -> Turn:
        """Everything before the provider is asked: the rate limit, the conversation, the
        budget, and the grounding (records, memories, last turns).

        What lives in Redis (the rate limit, an ephemeral conversation, the cached last turns)
        is asked while the database is read, so the two waits overlap; the turns are fetched
        for the id before the conversation is known to be the caller's, and used only once it is."""
        if not _CONVERSATION_ID.fullmatch(conversation_id):
            raise NotFound("no such conversation")
        from_redis = asyncio.ensure_future(self._from_redis(user_id, conversation_id))
        try:
            async with self.read_sessions() as session:
                kept = await ConversationRepository(session, user_id).find(conversation_id)
                provider: Provider = await self.providers.for_user(user_id, session)
                sources = await find_sources(session, user_id, question, remote=provider.is_remote)
                ephemeral, history = await from_redis
                ref = ephemeral or kept
                if ref is None:
                    raise NotFound("no such conversation")
                if history is None:  # a kept conversation whose last turns are not cached
                    history = await self._kept_context(session, ref)
                context = await build_context(session, user_id, question, sources, history, remote=provider.is_remote)
        finally:
            _settle(from_redis)
        if self.budgets is not None and provider.is_remote:
            await self.budgets.ensure_allowed(user_id)
        return Turn(user_id, ref, StoredMessage.new("user", question), provider, context)

    async def _kept_context(self, session: AsyncSession, ref: ConversationRef) -> list[ChatTurn]:
        """A kept conversation's last turns, oldest first: from the cache, else the database."""
        cached = await self.context_cache.get(ref.id)
        if cached is not None:
            return cached
        recent = await ConversationRepository(session, ref.owner_id).messages(ref.id, None, store.CONTEXT_TURNS)
        turns = [message.turn() for message in reversed(recent)]
        await self.context_cache.fill(ref.id, turns)
        return turns

    async def _from_redis(
        self, user_id: str, conversation_id: str
    ) -> tuple[ConversationRef | None, list[ChatTurn] | None]:
        """The rate limit, then (an ephemeral conversation of the caller's, its last turns) or
        (None, the cached last turns of a kept conversation with this id, if any)."""
        await self.rate_limiter.admit(CHAT_RATE, "chat", user_id)
        ephemeral = await self.ephemeral.get(user_id, conversation_id)
        if ephemeral is not None:
            return ephemeral, await self.ephemeral.context(ephemeral)
        return None, await self.context_cache.get(conversation_id)

    async def answer(self, turn: Turn) -> ChatMessagePublic:
        """The whole answer, stored; provider faults propagate as their 502/504."""
        parts: list[str] = []
        final: AnswerChunk | None = None
        async with _closing(self._chunks(turn)) as chunks:
            async for chunk in chunks:
                parts.append(chunk.text)
                if chunk.done:
                    final = chunk
        return (await self._finish(turn, "".join(parts), final)).public()

    async def stream(self, turn: Turn) -> AsyncIterator[bytes]:
        """Server-Sent Events: `delta` per piece of text, `done` with the stored message, or
        `error` (`{"error", "detail"}`); `: ping` while the provider is quiet.

        The provider is read by a task of its own, so waiting for it can be interrupted by a
        heartbeat without cancelling it; when the client goes away this generator is
        cancelled and cancels that task, which closes the provider's stream. When the
        service starts shutting down, the answer has `draining.STREAM_GRACE_SECONDS` left to
        complete; then the stream ends with `error` `service_unavailable` (nothing stored,
        the question can be asked again), never cut off mid-event."""
        queue: asyncio.Queue[AnswerChunk | Exception | _Draining | None] = asyncio.Queue()

        async def read_provider() -> None:
            try:
                async with _closing(self._chunks(turn)) as chunks:
                    first = True
                    async for chunk in chunks:
                        queue.put_nowait(chunk)
                        if first and chunk.text:
                            # The first text goes out now, not after whatever the provider has
                            # already sent behind it; later chunks are batched as they come.
                            first = False
                            await asyncio.sleep(0)
            except Exception as exc:  # noqa: BLE001 - handed over; the loop below raises it
                queue.put_nowait(exc)
            else:
                queue.put_nowait(None)

        reader = asyncio.create_task(read_provider(), name=f"chat-answer-{turn.conversation.id}")
        parts: list[str] = []
        final: AnswerChunk | None = None
        loop = asyncio.get_running_loop()
        must_end_at: float | None = None  # set once the service shuts down
        try:
            ended = False
            with draining.listening(lambda: queue.put_nowait(_DRAINING)):
                while not ended:
                    wait = (
                        HEARTBEAT_SECONDS if must_end_at is None else min(HEARTBEAT_SECONDS, must_end_at - loop.time())
                    )
                    try:
                        async with asyncio.timeout(max(0.0, wait)):
                            batch = [await queue.get()]
                    except TimeoutError:
                        if must_end_at is not None and loop.time() >= must_end_at:
                            raise ServiceUnavailable(SHUTTING_DOWN) from None
                        yield PING
                        continue
                    while not queue.empty():  # what has arrived meanwhile goes out in the same write
                        batch.append(queue.get_nowait())
                    deltas = bytearray()
                    for item in batch:
                        if item is None:
                            ended = True
                        elif isinstance(item, _Draining):
                            must_end_at = loop.time() + draining.STREAM_GRACE_SECONDS
                        elif isinstance(item, Exception):
                            if deltas:
                                yield bytes(deltas)
                            raise item
                        else:
                            if item.text:
                                parts.append(item.text)
                                deltas += sse_event("delta", {"text": item.text})
                            if item.done:
                                final = item
                    if deltas:
                        yield bytes(deltas)
            # Shielded: an answer that is complete is stored even if its client leaves now.
            storing = asyncio.ensure_future(self._finish(turn, "".join(parts), final))
            try:
                message = await asyncio.shield(storing)
            except asyncio.CancelledError:
                _keep(storing)
                raise
            yield sse_event("done", message.public().model_dump(mode="json"))
        except JiluError as exc:
            logger.warning("chat answer failed: %s (%s)", exc.code, exc.detail, extra={"error": exc.code})
            yield sse_event("error", {"error": exc.code, "detail": exc.detail})
        except Exception:
            logger.exception("chat answer failed")
            yield sse_event("error", {"error": "internal_error", "detail": "Internal server error"})
        finally:
            if not reader.done():
                reader.cancel()
                _keep(reader)

    async def _chunks(self, turn: Turn) -> AsyncIterator[AnswerChunk]:
        """The provider's answer, up to its final chunk; a provider silent for longer than
        the idle timeout is a timeout (504)."""
        async with _closing(turn.provider.answer(turn.context)) as stream:
            try:
                async with IdleTimeout(self.idle_timeout) as idle:  # not a timer per chunk
                    while True:
                        try:
                            chunk = await idle.next(stream)
                        except StopAsyncIteration:
                            return
                        yield chunk
                        if chunk.done:
                            return
            except TimeoutError:
                raise ProviderTimeout("The LLM provider stopped sending its answer") from None

    async def _finish(self, turn: Turn, text: str, final: AnswerChunk | None) -> StoredMessage:
        """Count the tokens, then store the question and the answer together. Citations are
        only ids of records that were in the context."""
        usage = final.usage if final is not None else TokenUsage()
        if self.budgets is not None and turn.provider.is_remote:
            try:
                await self.budgets.record(turn.user_id, usage.total)
            except Exception:  # the answer is worth more than the bookkeeping
                logger.exception("could not record %s tokens against the budget of %s", usage.total, turn.user_id)
        text = text.strip()
        if not text:
            raise ProviderBadResponse("The LLM provider's answer was empty")
        given = {record.id for record in turn.context.records}
        cited = final.citations if final is not None else ()
        answer = StoredMessage.new(
            "assistant",
            text,
            citations=tuple(dict.fromkeys(c for c in cited if c in given)),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
        new_turn = NewTurn(turn.question, answer, title_from(turn.question.content))
        ref = turn.conversation
        if ref.ephemeral:
            stored = await self.ephemeral.add_turn(ref, new_turn)
        else:
            async with transaction(self.write_sessions) as session:
                stored = await ConversationRepository(session, ref.owner_id).add_turn(ref.id, new_turn)
            if stored:
                self.memories.after_turn(turn.provider, turn.user_id, ref.id, turn.question.content)
                await self.context_cache.append(ref.id, [message.turn() for message in new_turn.messages])
        if not stored:
            raise NotFound("the conversation was deleted or expired while it was being answered")
        logger.info(
            "answered in conversation %s with %s (%d records given, %d cited, %d tokens)",
            ref.id,
            turn.provider.name,
            len(given),
            len(answer.citations),
            usage.total,
        )
        return answer
