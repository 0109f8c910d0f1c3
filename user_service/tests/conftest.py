"""Fixtures for user_service's in-process tests: the real app on a migrated database (SQLite,
and PostgreSQL when one answers) and the real test Redis, emptied before each test.

Every response a test receives through `Api.client` is checked for password and token hashes,
so a leak on any route fails whichever test met it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.support import app_client
from user_service.app.config import UserSettings
from user_service.app.main import create_app
from user_service.tests.helpers import PASSWORD, Account, Api, MakeApi, no_secrets


@pytest.fixture
def make_api(make_settings: Callable[..., Any], migrated_database_url: str, redis: Redis) -> MakeApi:
    """`async with make_api(**setting_overrides) as api:` — user_service on the test database."""

    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[Api]:
        settings = make_settings(UserSettings, database_url=migrated_database_url, **overrides)
        app = create_app(settings)
        async with app_client(app) as client:
            client.event_hooks["response"].append(no_secrets)
            yield Api(app, client, redis, settings)

    return build


@pytest.fixture
async def api(make_api: MakeApi) -> AsyncIterator[Api]:
    async with make_api() as built:
        yield built


@pytest.fixture
async def founder(api: Api) -> dict[str, Any]:
    """The instance's first user, hence its administrator (registered, not logged in)."""
    user = await api.register("root")
    assert user["role"] == "admin"
    return user


@pytest.fixture
async def admin(api: Api, founder: dict[str, Any]) -> Account:
    """The administrator, logged in."""
    pair = await api.login("root")
    return Account(founder["id"], "root", PASSWORD, "admin", pair["access_token"], pair["refresh_token"])


@pytest.fixture
async def alice(api: Api, founder: dict[str, Any]) -> Account:
    """A plain user, logged in."""
    account = await api.account("alice")
    assert account.role == "user"
    return account
