"""`/api/v1/memories`: the facts the assistant keeps about the caller, which they may list,
add, edit and delete (forwarded here by web and mobile)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from common.errors import Conflict, NotFound, ServiceUnavailable, Unauthorized, error_responses
from common.pagination import Page, PageCursor, PageLimit
from llm_service.app.deps import CurrentUser, SessionDep, ShortTermDep
from llm_service.app.memories import service
from llm_service.app.memories.schemas import MemoryCreate, MemoryPublic, MemoryUpdate

router = APIRouter(
    prefix="/api/v1/memories", tags=["memories"], responses=error_responses(Unauthorized, ServiceUnavailable)
)


@router.get("", response_model=Page[MemoryPublic])
async def list_memories(
    user: CurrentUser,
    session: SessionDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
    long_term: Annotated[bool | None, Query(description="only long-term (true) or short-term (false)")] = None,
) -> Page[MemoryPublic]:
    """The caller's memories, most recently changed (or reinforced) first. Short-term
    memories past their expiry are not shown."""
    rows, next_cursor = await service.list_page(session, user.id, limit=limit, cursor=cursor, long_term=long_term)
    return Page[MemoryPublic](items=[MemoryPublic.model_validate(m) for m in rows], next_cursor=next_cursor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MemoryPublic,
    responses={200: {"model": MemoryPublic, "description": "The fact was already known: that memory, reinforced"}},
)
async def create_memory(
    data: MemoryCreate, user: CurrentUser, session: SessionDep, short_term: ShortTermDep, response: Response
) -> MemoryPublic:
    """Add a fact (201). A fact the caller's memories already state (the same words up to
    case, width, spacing and final punctuation) is not duplicated: that memory is reinforced
    (importance raised to the larger of the two, expiry pushed out, made the caller's own)
    and returned with 200."""
    remembered = await service.create(session, user.id, data, short_term=short_term)
    if not remembered.created:
        response.status_code = status.HTTP_200_OK
    return MemoryPublic.model_validate(remembered.memory)


@router.get("/{memory_id}", response_model=MemoryPublic, responses=error_responses(NotFound))
async def read_memory(memory_id: str, user: CurrentUser, session: SessionDep) -> MemoryPublic:
    """One memory of the caller's."""
    return MemoryPublic.model_validate(await service.get(session, user.id, memory_id))


@router.patch("/{memory_id}", response_model=MemoryPublic, responses=error_responses(NotFound, Conflict))
async def update_memory(
    memory_id: str, changes: MemoryUpdate, user: CurrentUser, session: SessionDep, short_term: ShortTermDep
) -> MemoryPublic:
    """Edit a memory. An edited memory becomes the caller's own (`source: "user"`): it no
    longer decays. Making it short-term starts its expiry; new content that another memory
    already states → 409."""
    memory = await service.update_memory(session, user.id, memory_id, changes, short_term=short_term)
    return MemoryPublic.model_validate(memory)


@router.delete("/{memory_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(NotFound))
async def delete_memory(memory_id: str, user: CurrentUser, session: SessionDep) -> None:
    """Forget a memory for good."""
    await service.delete_memory(session, user.id, memory_id)
