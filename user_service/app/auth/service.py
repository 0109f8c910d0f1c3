"""Logging in, refreshing and logging out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Forbidden, InvalidCredentials, ServiceUnavailable, SessionEnded, TokenInvalid
from common.security import AuthUser
from common.security.passwords import verify_password
from common.security.sessions import (
    GRACE,
    REUSED,
    ROTATED,
    Standing,
    cache_standing,
    deny_access_token,
    end_session,
    open_session,
    rotate_refresh,
)
from common.security.tokens import ExpiredToken, InvalidToken, TokenCodec
from common.users.models import User
from user_service.app.auth.schemas import TokenPair
from user_service.app.users import service as user_service

FULL_ACCESS = ("read", "write")


def _pair(
    codec: TokenCodec,
    user_id: str,
    session_id: str,
    *,
    jtis: tuple[str, str] | None = None,
    issued_at: datetime | None = None,
) -> tuple[TokenPair, str]:
    """A new pair: random ids at login; at a refresh the ids derived from the token it
    replaces and the session's stamp, so that the same refresh answers the same bytes."""
    access_jti, refresh_jti = jtis or (None, None)
    access = codec.issue("access", user_id, session_id, FULL_ACCESS, jti=access_jti, issued_at=issued_at)
    refresh = codec.issue("refresh", user_id, session_id, jti=refresh_jti, issued_at=issued_at)
    pair = TokenPair(
        access_token=access.token,
        refresh_token=refresh.token,
        expires_in=int(codec.access_lifetime.total_seconds()),
    )
    return pair, refresh.claims.jti


async def login(session: AsyncSession, redis: Redis, codec: TokenCodec, username: str, password: str) -> TokenPair:
    user = await user_service.get_by_username(session, username)
    if not await verify_password(password, user.password_hash if user else None) or user is None:
        raise InvalidCredentials("incorrect username or password")
    if not user.is_active:
        raise Forbidden("this account is deactivated")
    return await open_session_for(redis, codec, user)


async def open_session_for(redis: Redis, codec: TokenCodec, user: User) -> TokenPair:
    """A new session (refresh family) for `user`, who has proved who they are, and its first pair."""
    session_id = uuid.uuid4().hex
    pair, refresh_jti = _pair(codec, user.id, session_id)
    await open_session(redis, user.id, session_id, refresh_jti, int(codec.refresh_lifetime.total_seconds()))
    await cache_standing(redis, user.id, Standing(is_active=user.is_active, role=user.role), authoritative=False)
    return pair


async def refresh(
    session: AsyncSession, redis: Redis, codec: TokenCodec, refresh_token: str, *, grace_seconds: int = 0
) -> TokenPair:
    """Trade a refresh token for a new pair; the old one dies. Presented again within
    `grace_seconds` (while its successor is unused for a refresh), it answers that same pair
    again; any other reuse ends the session."""
    try:
        claims = codec.decode(refresh_token, "refresh")
    except ExpiredToken as exc:
        raise SessionEnded("the refresh token has expired; log in again") from exc
    except InvalidToken as exc:
        raise TokenInvalid("invalid refresh token") from exc
    user = await session.get(User, claims.sub)
    if user is None:
        raise TokenInvalid("invalid refresh token")
    if not user.is_active:
        raise SessionEnded("the session has ended; log in again")
    jtis = codec.successor_jtis(claims.jti)
    now = int(datetime.now(UTC).timestamp())
    try:
        rotation = await rotate_refresh(
            redis,
            user.id,
            claims.sid,
            claims.jti,
            jtis[1],
            int(codec.refresh_lifetime.total_seconds()),
            issued_at=now,
            grace_seconds=grace_seconds,
        )
    except RedisError as exc:  # sessions live in Redis: fail closed, as authentication does
        raise ServiceUnavailable("sessions are unavailable; try again shortly") from exc
    if rotation.outcome == REUSED:
        raise SessionEnded("this refresh token was already used; the session has been ended")
    if rotation.outcome not in (ROTATED, GRACE):
        raise SessionEnded("the session has ended; log in again")
    issued_at = datetime.fromtimestamp(rotation.issued_at, UTC)
    pair, _ = _pair(codec, user.id, claims.sid, jtis=jtis, issued_at=issued_at)
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
