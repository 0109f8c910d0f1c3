"""`/api/v1/chat`: conversations and their messages (forwarded here by web and mobile).

Conversations are listed by last use, newest first, kept and ephemeral ones together.
`GET /conversations/{id}` carries the first page of its messages (newest first);
`?limit&cursor` on it, or `GET /conversations/{id}/messages`, page further back.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from fastapi.responses import StreamingResponse

from common.api_clients.llm.errors import ProviderError, ProviderTimeout
from common.errors import BadRequest, Conflict, NotFound, RateLimited, Unauthorized, error_responses
from common.pagination import Page, PageCursor, PageLimit
from llm_service.app.chat.schemas import (
    ChatMessagePublic,
    ConversationCreate,
    ConversationDetail,
    ConversationPublic,
    ConversationUpdate,
    MessageCreate,
)
from llm_service.app.deps import ChatDep, CurrentUser, SessionDep

router = APIRouter(prefix="/api/v1/chat", tags=["chat"], responses=error_responses(Unauthorized))

MESSAGES_PAGE = 50

# Streamed or not, a question answers 201: it creates a message (the stream's `done` event
# carries it). The status is sent before the answer is known, so a provider failing mid-stream
# is an `error` event inside that 201, not a 502.
_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "Without `stream`: the stored assistant message (JSON). With `stream: true`: Server-Sent "
        "Events — `delta` `{text}`, then `done` (the stored assistant message) or `error` `{error, detail}`; "
        "`: ping` comments while the provider is quiet",
        "content": {"text/event-stream": {}},  # each event's schema: common.openapi.truthful
    }
}


@router.get("/conversations", response_model=Page[ConversationPublic], responses=error_responses(BadRequest))
async def list_conversations(
    user: CurrentUser, session: SessionDep, chat: ChatDep, limit: PageLimit = 50, cursor: PageCursor = None
) -> Page[ConversationPublic]:
    """The caller's conversations by last use, newest first: kept ones and the ephemeral ones
    that have not expired."""
    return await chat.list_conversations(session, user.id, limit, cursor)


@router.post(
    "/conversations",
    status_code=status.HTTP_201_CREATED,
    response_model=ConversationPublic,
    responses=error_responses(Conflict),
)
async def create_conversation(
    data: ConversationCreate, user: CurrentUser, session: SessionDep, chat: ChatDep
) -> ConversationPublic:
    """Start a conversation. An `ephemeral` one is kept only in Redis and is gone after
    `JILU_CHAT_TTL` seconds without use; an untitled one is named after its first question."""
    return (await chat.create(session, user.id, data)).public()


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationDetail,
    responses=error_responses(NotFound, BadRequest),
)
async def get_conversation(
    conversation_id: str,
    user: CurrentUser,
    session: SessionDep,
    chat: ChatDep,
    limit: PageLimit = MESSAGES_PAGE,
    cursor: PageCursor = None,
) -> ConversationDetail:
    """The conversation with a page of its messages, newest first (`messages.next_cursor`
    pages further back)."""
    ref = await chat.find(session, user.id, conversation_id)
    messages = await chat.messages(session, ref, limit, cursor)
    return ConversationDetail(**ref.public().model_dump(), messages=messages)


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=Page[ChatMessagePublic],
    responses=error_responses(NotFound, BadRequest),
)
async def list_messages(
    conversation_id: str,
    user: CurrentUser,
    session: SessionDep,
    chat: ChatDep,
    limit: PageLimit = MESSAGES_PAGE,
    cursor: PageCursor = None,
) -> Page[ChatMessagePublic]:
    """A page of the conversation's messages, newest first."""
    ref = await chat.find(session, user.id, conversation_id)
    return await chat.messages(session, ref, limit, cursor)


@router.patch(
    "/conversations/{conversation_id}", response_model=ConversationPublic, responses=error_responses(NotFound)
)
async def rename_conversation(
    conversation_id: str, data: ConversationUpdate, user: CurrentUser, session: SessionDep, chat: ChatDep
) -> ConversationPublic:
    """Rename the conversation."""
    ref = await chat.find(session, user.id, conversation_id)
    return (await chat.rename(session, ref, data.title)).public()


@router.delete(
    "/conversations/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(NotFound),
)
async def delete_conversation(conversation_id: str, user: CurrentUser, session: SessionDep, chat: ChatDep) -> Response:
    """Delete the conversation and all its messages."""
    ref = await chat.find(session, user.id, conversation_id)
    await chat.delete(session, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatMessagePublic,
    responses={**_STREAM_RESPONSE, **error_responses(NotFound, RateLimited, ProviderError, ProviderTimeout)},
)
async def ask(conversation_id: str, data: MessageCreate, user: CurrentUser, chat: ChatDep) -> Any:
    """Ask a question. The answer is grounded in the caller's own records (searched with the
    question) and memories, and cites only records it was given; records that opted out of
    AI never reach a remote provider. Without `stream`: 201 with the stored assistant
    message, or 502/504 when the provider fails. With `stream`: 201 too, with Server-Sent
    Events (a provider failure is then an `error` event); a client that disconnects cancels
    the provider's call. The question and its answer are stored
    together once the answer is complete. At most 30 questions a minute: 429."""
    # No SessionDep: a write transaction must not stay open while the provider answers.
    turn = await chat.start_turn(user.id, conversation_id, data.content)
    if not data.stream:
        return await chat.answer(turn)
    return StreamingResponse(
        chat.stream(turn),
        status_code=status.HTTP_201_CREATED,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
