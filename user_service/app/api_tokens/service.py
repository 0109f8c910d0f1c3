"""Personal API tokens: shown once, stored hashed, revocable at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Conflict
from common.security.api_tokens import CACHE_TTL, REVOKED, api_token_cache_key, generate_api_token
from common.users.models import ApiToken
from user_service.app.api_tokens.repository import ApiTokenRepository
from user_service.app.api_tokens.schemas import ApiTokenCreate, ApiTokenCreated

MAX_TOKENS_PER_USER = 50


async def create(session: AsyncSession, user_id: str, data: ApiTokenCreate) -> ApiTokenCreated:
    if await ApiTokenRepository(session, user_id).count() >= MAX_TOKENS_PER_USER:
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
    """The user's tokens, newest first."""
    return await ApiTokenRepository(session, user_id).newest_first()


async def delete(session: AsyncSession, redis: Redis, user_id: str, token_id: str) -> None:
    """Delete one of the user's tokens; it stops working at once."""
    row = await ApiTokenRepository(session, user_id).get_or_404(token_id, for_update=True, operation="delete")
    await session.delete(row)
    await session.flush()
    # A tombstone, not a delete: a request racing this one must not re-cache the token.
    await redis.set(api_token_cache_key(row.token_hash), REVOKED, ex=CACHE_TTL)
