"""Logging in, refreshing and logging out."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Forbidden, ServiceUnavailable, Unauthorized
from common.security import AuthUser
from common.security.passwords import verify_password
from common.security.sessions import (
    REUSED,
    ROTATED,
    Standing,
    cache_standing,
    deny_access_token,
    end_session,
    open_session,
    rotate_refresh,
)
from common.security.tokens import InvalidToken, TokenCodec
from common.users.models import User
from user_service.app.auth.schemas import TokenPair
from user_service.app.users import service as user_service

FULL_ACCESS = ("read", "write")


def _pair(codec: TokenCodec, user_id: str, session_id: str) -> tuple[TokenPair, str]:
    access = codec.issue("access", user_id, session_id, FULL_ACCESS)
    refresh = codec.issue("refresh", user_id, session_id)
    pair = TokenPair(
        access_token=access.token,
        refresh_token=refresh.token,
        expires_in=int(codec.access_lifetime.total_seconds()),
    )
    return pair, refresh.claims.jti


async def login(session: AsyncSession, redis: Redis, codec: TokenCodec, username: str, password: str) -> TokenPair:
    user = await user_service.get_by_username(session, username)
    if not await verify_password(password, user.password_hash if user else None) or user is None:
        raise Unauthorized("incorrect username or password")
    if not user.is_active:
        raise Forbidden("this account is deactivated")
    session_id = uuid.uuid4().hex
    pair, refresh_jti = _pair(codec, user.id, session_id)
    await open_session(redis, user.id, session_id, refresh_jti, int(codec.refresh_lifetime.total_seconds()))
    await cache_standing(redis, user.id, Standing(is_active=user.is_active, role=user.role), authoritative=False)
    return pair


async def refresh(session: AsyncSession, redis: Redis, codec: TokenCodec, refresh_token: str) -> TokenPair:
    """Trade a refresh token for a new pair; the old one dies. Reuse ends the session."""
    try:
        claims = codec.decode(refresh_token, "refresh")
    except InvalidToken as exc:
        raise Unauthorized("invalid or expired refresh token") from exc
    user = await session.get(User, claims.sub)
    if user is None or not user.is_active:
        raise Unauthorized("invalid or expired refresh token")
    pair, new_jti = _pair(codec, user.id, claims.sid)
    try:
        outcome = await rotate_refresh(
            redis, user.id, claims.sid, claims.jti, new_jti, int(codec.refresh_lifetime.total_seconds())
        )
    except RedisError as exc:  # sessions live in Redis: fail closed, as authentication does
        raise ServiceUnavailable("sessions are unavailable; try again shortly") from exc
    if outcome == REUSED:
        raise Unauthorized("this refresh token was already used; the session has been ended")
    if outcome != ROTATED:
        raise Unauthorized("the session has ended; log in again")
    return pair


async def logout(redis: Redis, user: AuthUser) -> None:
    """End the caller's session: its refresh family and the access token presented."""
    if user.session_id is None or user.token_jti is None or user.token_expires_at is None:
        raise Forbidden("API tokens are not logged out; delete the token instead")
    try:
        await deny_access_token(redis, user.token_jti, user.token_expires_at)
        await end_session(redis, user.id, user.session_id)
    except RedisError as exc:
        raise ServiceUnavailable("sessions are unavailable; try again shortly") from exc
