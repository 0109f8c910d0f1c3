"""Fixtures shared by llm_service's tests: the fake provider and an llm_service stack
(user_service for logins, alice and bob, the digest scheduler off)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from llm_service.tests.fake_provider import FakeProvider, serve_fake_provider
from llm_service.tests.llm_stack import LlmStack, llm_stack


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with serve_fake_provider() as provider:
        yield provider


@pytest.fixture
def make_stack(make_settings: Callable[..., Any], migrated_database_url: str, redis: Any) -> Callable[..., Any]:
    """`async with make_stack(**llm_settings) as stack`: alice and bob, the scheduler off."""

    def build(**llm: Any) -> Any:
        llm.setdefault("scheduler_interval_seconds", 0)
        return llm_stack(make_settings, migrated_database_url, **llm)

    return build


@pytest.fixture
async def stack(make_stack: Callable[..., Any]) -> AsyncIterator[LlmStack]:
    async with make_stack() as built:
        yield built
