"""`/api/v1/digests`: daily and weekly digests of the caller's records, written by the
scheduler or on request, with read and pinned flags (forwarded here by web and mobile)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from common.errors import (
    NotFound,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    UpstreamError,
    UpstreamTimeout,
    error_responses,
)
from common.pagination import Page, PageCursor, PageLimit
from llm_service.app.deps import BudgetsDep, CurrentUser, ProvidersDep, SessionDep, SessionsDep
from llm_service.app.digests import service
from llm_service.app.digests.schemas import DigestGenerate, DigestPublic, DigestUpdate, Period

router = APIRouter(
    prefix="/api/v1/digests", tags=["digests"], responses=error_responses(Unauthorized, ServiceUnavailable)
)


@router.get("", response_model=Page[DigestPublic])
async def list_digests(
    user: CurrentUser,
    session: SessionDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
    period: Annotated[Period | None, Query(description="only daily (day) or weekly (week) digests")] = None,
) -> Page[DigestPublic]:
    """The caller's digests, the latest period first."""
    rows, next_cursor = await service.list_page(session, user.id, limit=limit, cursor=cursor, period=period)
    return Page[DigestPublic](items=[DigestPublic.model_validate(d) for d in rows], next_cursor=next_cursor)


@router.post(
    "/generate",
    status_code=status.HTTP_201_CREATED,
    response_model=DigestPublic,
    responses=error_responses(NotFound, RateLimited, UpstreamError, UpstreamTimeout),
)
async def generate_digest(
    data: DigestGenerate, user: CurrentUser, providers: ProvidersDep, sessions: SessionsDep, budgets: BudgetsDep
) -> DigestPublic:
    """Write the digest of a day or of a Monday-to-Sunday week (the one containing `date`,
    by default today, in the caller's time zone) from the records that occurred in it, now.
    A digest already there for that period is rewritten and keeps its read and pinned
    flags. A period that has not begun → 422; the daily budget of a remote provider used up
    → 429; a provider failure → 502 or 504."""
    provider = await providers.for_user(user.id)
    digest = await service.write(sessions, provider, user.id, data.period, data.date, budgets=budgets)
    if digest is None:  # rewriting never gives way: only an account deleted meanwhile
        raise NotFound("no such user")
    return DigestPublic.model_validate(digest)


@router.get("/{digest_id}", response_model=DigestPublic, responses=error_responses(NotFound))
async def read_digest(digest_id: str, user: CurrentUser, session: SessionDep) -> DigestPublic:
    """One digest of the caller's."""
    return DigestPublic.model_validate(await service.get(session, user.id, digest_id))


@router.patch("/{digest_id}", response_model=DigestPublic, responses=error_responses(NotFound))
async def update_digest(digest_id: str, changes: DigestUpdate, user: CurrentUser, session: SessionDep) -> DigestPublic:
    """Mark a digest read or unread, pinned or unpinned."""
    return DigestPublic.model_validate(await service.update_flags(session, user.id, digest_id, changes))
