"""Fixtures for web_service's tests: user_service served over real HTTP (web_service logs in
through it), web_service in-process or served too, one migrated database and the real test
Redis, emptied before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import jieba
import pytest
from redis.asyncio import Redis

from tests.support import serve_app
from user_service.app.config import UserSettings
from user_service.app.main import create_app as create_user_app
from web_service.app.config import WebSettings
from web_service.tests.support import SECRET, WebStack

MakeWebStack = Callable[..., Any]


@pytest.fixture(scope="session", autouse=True)
def jieba_loaded() -> None:
    """Load jieba's dictionary once up front: the first record written otherwise loads it on
    the serving event loop, and on a busy machine that stalls open streams' Redis reads past
    their socket timeout."""
    jieba.initialize()


@pytest.fixture
async def make_web_stack(
    make_settings: Callable[..., Any], migrated_database_url: str, redis: Redis
) -> AsyncIterator[MakeWebStack]:
    """`await make_web_stack(web={...}, user={...})`: user_service served over HTTP and
    web_service's app (not started: `stack.browser()` runs it in-process, `stack.serve()`
    over HTTP), on one database, Redis and secret; keyword dicts override settings."""
    async with AsyncExitStack() as exits:

        async def build(web: dict[str, Any] | None = None, user: dict[str, Any] | None = None) -> WebStack:
            common = {"database_url": migrated_database_url, "secret_key": SECRET}
            user_settings = make_settings(UserSettings, **common, **(user or {}))
            user_url = await exits.enter_async_context(serve_app(create_user_app(user_settings)))
            web_settings = make_settings(WebSettings, **common, **{"user_url": user_url, **(web or {})})
            return await exits.enter_async_context(_stack(user_url, web_settings, redis))

        yield build


@asynccontextmanager
async def _stack(user_url: str, web_settings: WebSettings, redis: Redis) -> AsyncIterator[WebStack]:
    stack = WebStack(user_url, web_settings, redis)
    try:
        yield stack
    finally:
        await stack.aclose()


@pytest.fixture
async def web_stack(make_web_stack: MakeWebStack) -> WebStack:
    """The stack on default settings (bar a 0.3 s heartbeat and a trusted proxy network,
    10.0.0.0/8, for the forwarded-header tests)."""
    return await make_web_stack(web={"events_heartbeat_seconds": 0.3, "trusted_proxies": ["10.0.0.0/8"]})
