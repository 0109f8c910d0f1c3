"""What user_service's tests share: an `Api` over the real app and short-hands for its flows."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.deps import service_state
from common.users.models import ApiToken, User
from user_service.app.config import UserSettings

# A password that passes every rule; tests that do not care about passwords use it.
PASSWORD = "plum-Lantern-42"
# What must never appear in any answer: argon2 hashes, and the names of the hash columns.
SECRET_MARKERS = ("$argon2", "password_hash", "token_hash")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Account:
    """A registered user, logged in once."""

    id: str
    username: str
    password: str
    role: str
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access)


class Api:
    """The app, a client on it, and short-hands for the flows most tests start with."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, redis: Redis, settings: UserSettings) -> None:
        self.app = app
        self.client = client
        self.redis = redis
        self.settings = settings

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return service_state(self.app).sessionmaker

    async def register(self, username: str, password: str = PASSWORD, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/register", json={"username": username, "password": password, **fields}
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def token(self, username: str, password: str = PASSWORD, **kwargs: Any) -> httpx.Response:
        return await self.client.post("/api/v1/auth/token", data={"username": username, "password": password}, **kwargs)

    async def login(self, username: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.token(username, password)
        assert response.status_code == 200, response.text
        return response.json()

    async def account(self, username: str, password: str = PASSWORD, **fields: Any) -> Account:
        """Register `username` and log in."""
        user = await self.register(username, password, **fields)
        pair = await self.login(username, password)
        return Account(user["id"], username, password, user["role"], pair["access_token"], pair["refresh_token"])

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})

    async def me(self, token: str) -> httpx.Response:
        return await self.client.get("/api/v1/users/me", headers=bearer(token))

    async def create_api_token(self, access: str, **fields: Any) -> dict[str, Any]:
        body = {"name": "script", **fields}
        response = await self.client.post("/api/v1/users/me/api-tokens", json=body, headers=bearer(access))
        assert response.status_code == 201, response.text
        return response.json()

    async def user_row(self, user_id: str) -> User:
        async with self.sessionmaker() as session:
            user = (await session.execute(select(User).where(User.id == user_id))).scalar_one()
            session.expunge(user)
            return user

    async def user_count(self) -> int:
        async with self.sessionmaker() as session:
            return len((await session.execute(select(User.id))).all())

    async def update_api_token_row(self, token_id: str, **values: Any) -> None:
        async with service_state(self.app).write_sessionmaker() as session, session.begin():
            await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(**values))

    async def api_token_row(self, token_id: str) -> ApiToken:
        async with self.sessionmaker() as session:
            row = (await session.execute(select(ApiToken).where(ApiToken.id == token_id))).scalar_one()
            session.expunge(row)
            return row


# `async with make_api(**setting_overrides) as api:` (the fixture of that name).
MakeApi = Callable[..., AbstractAsyncContextManager[Api]]


async def no_secrets(response: httpx.Response) -> None:
    """A response hook: fail when an answer carries a password or token hash."""
    await response.aread()
    for marker in SECRET_MARKERS:
        assert marker not in response.text, f"{response.request.url} answered with {marker!r}: {response.text}"


# For modules whose tests gain nothing from also running on PostgreSQL. (Under
# JILU_TEST_DATABASE_URL they run on PostgreSQL instead, their id still saying sqlite; they
# are not in .ci/run's PostgreSQL pass, see conftest.py `_database_dependent`.)
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def advance_redis_clock(redis: Redis, seconds: float) -> None:
    """Let `seconds` pass for every key with an expiry: what would have expired by then is
    deleted, the rest is left with that much less time to live. (Lifetimes here are days.)"""
    step = int(seconds * 1000)
    async for key in redis.scan_iter():
        remaining = await redis.pttl(key)
        if remaining < 0:  # no expiry, or gone meanwhile
            continue
        if remaining <= step:
            await redis.delete(key)
        else:
            await redis.pexpire(key, remaining - step)
