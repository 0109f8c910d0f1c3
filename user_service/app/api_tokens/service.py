"""Personal API tokens: shown once, stored hashed, revocable at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Conflict, NotFound
from common.security.api_tokens import CACHE_TTL, REVOKED, api_token_cache_key, generate_api_token
from common.users.crud import api_token_crud
from common.users.models import ApiToken
from user_service.app.api_tokens.schemas import ApiTokenCreate, ApiTokenCreated

MAX_TOKENS_PER_USER = 50


async def create(session: AsyncSession, user_id: str, data: ApiTokenCreate) -> ApiTokenCreated:
    if await api_token_crud.count(session, user_id=user_id) >= MAX_TOKENS_PER_USER:
        raise Conflict(f"a user may hold at most {MAX_TOKENS_PER_USER} API tokens; delete one first")
    token, token_hash, prefix = generate_api_token()
    now = datetime.now(UTC)
    expires_at = now + timedelta(days=data.expires_in_days) if data.expires_in_days else None
    scopes = sorted(set(data.scopes))
    row = ApiToken(
        user_id=user_id,
        name=data.name,
        token_hash=token_hash,
        token_prefix=prefix,
        scopes=scopes,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return ApiTokenCreated(id=row.id, name=row.name, token=token, scopes=scopes, expires_at=expires_at)


async def list_for(session: AsyncSession, user_id: str) -> list[ApiToken]:
    statement = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
    return list((await session.execute(statement)).scalars())


async def delete(session: AsyncSession, redis: Redis, user_id: str, token_id: str) -> None:
    row = await session.get(ApiToken, token_id)
    if row is None or row.user_id != user_id:
        raise NotFound("no such API token")
    await session.delete(row)
    await session.flush()
    # A tombstone, not a delete: a request racing this one must not re-cache the token.
    await redis.set(api_token_cache_key(row.token_hash), REVOKED, ex=CACHE_TTL)
