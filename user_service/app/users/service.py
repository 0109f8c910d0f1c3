"""Accounts: registration, profile, password, and what administrators change."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.cache import cache_key
from common.errors import BadRequest, Conflict, NotFound, Unprocessable
from common.pagination import paginate
from common.security.passwords import hash_password, password_problem, verify_password
from common.security.sessions import Standing, cache_standing, end_all_sessions
from common.users.models import User
from user_service.app.users.repository import user_crud
from user_service.app.users.schemas import UserCreate, UserUpdate

FIRST_USER_LOCK_SECONDS = 30


def username_key(username: str) -> str:
    return username.casefold()


async def get_by_username(session: AsyncSession, username: str) -> User | None:
    return (await session.execute(select(User).where(User.username_key == username_key(username)))).scalar()


async def get(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


async def _ensure_unique(
    session: AsyncSession, *, username: str | None = None, email: str | None = None, exclude_id: str | None = None
) -> None:
    if username is not None and await user_crud.exists(session, username_key=username_key(username)):
        raise Conflict("that username is taken")
    if email is not None:
        query = select(User.id).where(User.email == email)
        if exclude_id:
            query = query.where(User.id != exclude_id)
        if (await session.execute(query)).first():
            raise Conflict("that email is already registered")


def _first_admin_lock(session: AsyncSession) -> str:
    # One lock per database: instances that share a Redis do not hold up each other.
    # The bind may be an Engine or a Connection; both lead to the engine, which has the URL.
    database = session.get_bind().engine.url.render_as_string(hide_password=True)
    return cache_key("lock", "first-admin", hashlib.sha256(database.encode()).hexdigest()[:16])


async def register(session: AsyncSession, redis: Redis, data: UserCreate) -> User:
    """Create an account; the first account of an instance becomes its administrator."""
    problem = password_problem(data.password, data.username)
    if problem:
        raise Unprocessable("password", f"password {problem}")
    email = data.email.lower() if data.email else None
    await _ensure_unique(session, username=data.username, email=email)
    role = "user"
    first_user_lock = _first_admin_lock(session)
    if await user_crud.count(session) == 0:
        # Two people registering on an empty instance at once: one lock decides who is first.
        if await redis.set(first_user_lock, "1", nx=True, ex=FIRST_USER_LOCK_SECONDS):
            role = "admin"
        else:
            raise Conflict("the instance is being set up by another registration; try again in a moment")
    user = User(
        username=data.username,
        username_key=username_key(data.username),
        email=email,
        display_name=data.display_name,
        password_hash=await hash_password(data.password),
        role=role,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration took the name first
        if role == "admin":
            await redis.delete(first_user_lock)
        raise Conflict("that username or email is taken") from exc
    return user


async def update_profile(session: AsyncSession, user: User, changes: UserUpdate) -> User:
    values: dict[str, Any] = changes.model_dump(exclude_unset=True)
    if "email" in values and values["email"] is not None:
        values["email"] = values["email"].lower()
        await _ensure_unique(session, email=values["email"], exclude_id=user.id)
    for null_forbidden in ("language", "time_zone"):
        if null_forbidden in values and values[null_forbidden] is None:
            raise Unprocessable(null_forbidden, "cannot be null")
    for field, value in values.items():
        setattr(user, field, value)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # the same email claimed concurrently by someone else
        raise Conflict("that email is already registered") from exc
    return user


async def change_password(
    session: AsyncSession, redis: Redis, user: User, current: str, new: str, keep_session: str | None
) -> None:
    """Change the password and end every other session of the user. The kept session's
    refresh grace window closes with them: the token it just replaced no longer buys its
    live pair (presented again, it is reuse and ends this session too)."""
    if not await verify_password(current, user.password_hash):
        raise BadRequest("the current password is not correct")
    problem = password_problem(new, user.username)
    if problem:
        raise Unprocessable("new_password", f"password {problem}")
    user.password_hash = await hash_password(new)
    user.password_changed_at = datetime.now(UTC)
    await session.flush()
    await end_all_sessions(redis, user.id, keep=keep_session)


async def list_users(
    session: AsyncSession, *, limit: int, cursor: str | None, q: str | None
) -> tuple[list[User], str | None]:
    statement = select(User)
    if q:
        # `%` and `_` in the query are literal characters, not wildcards.
        escaped = q.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        statement = statement.where(
            or_(
                User.username_key.like(pattern, escape="\\"),
                func.lower(User.display_name).like(pattern, escape="\\"),
                func.lower(User.email).like(pattern, escape="\\"),
            )
        )
    return await paginate(session, statement, User.created_at, User.id, limit=limit, cursor=cursor)


async def admin_update(
    session: AsyncSession, redis: Redis, admin_id: str, user_id: str, role: str | None, is_active: bool | None
) -> User:
    user = await get(session, user_id)
    if user.id == admin_id and (role == "user" or is_active is False):
        raise Conflict("administrators cannot demote or deactivate themselves")
    if role is not None:
        user.role = role
    if is_active is not None:
        user.is_active = is_active
    await session.flush()
    # Every service reads this standing; updating it makes the change take effect at once.
    await cache_standing(redis, user.id, Standing(is_active=user.is_active, role=user.role), authoritative=True)
    if is_active is False:
        await end_all_sessions(redis, user.id)
    return user
