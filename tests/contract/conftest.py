"""The stack a client developer meets: user_service, llm_service and mobile_service served
over real HTTP (uvicorn in threads), on one migrated database (SQLite, and PostgreSQL when one
answers) and the test Redis, the mobile port relaying to the other two by their base URLs;
the LLM provider is the offline one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from llm_service.app.config import LlmSettings
from llm_service.app.main import create_app as create_llm_app
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.support import serve_app
from user_service.app.config import UserSettings
from user_service.app.main import create_app as create_user_app


@dataclass(frozen=True)
class ServedStack:
    mobile_url: str
    user_url: str
    llm_url: str


@pytest.fixture
async def served_stack(
    make_settings: Callable[..., Any], migrated_database_url: str, redis: Redis
) -> AsyncIterator[ServedStack]:
    common = {"database_url": migrated_database_url, "llm_provider": "local"}
    async with AsyncExitStack() as stack:
        user_url = await stack.enter_async_context(serve_app(create_user_app(make_settings(UserSettings, **common))))
        llm_url = await stack.enter_async_context(serve_app(create_llm_app(make_settings(LlmSettings, **common))))
        mobile = create_mobile_app(make_settings(MobileSettings, user_url=user_url, llm_url=llm_url, **common))
        mobile_url = await stack.enter_async_context(serve_app(mobile))
        yield ServedStack(mobile_url, user_url, llm_url)
