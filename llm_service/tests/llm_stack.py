"""A stack for llm_service's provider-settings and budget tests: user_service (logins),
llm_service (its workers on the test's event loop) and mobile_service (records) in-process
on one database and one Redis; the LLM provider is the fake one (`fake_provider.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select

from common.users.models import User
from llm_service.app.analysis.worker import analysis_queue
from llm_service.app.config import LlmSettings
from llm_service.app.deps import llm_state
from llm_service.app.main import create_app as create_llm_app
from llm_service.tests.fake_provider import FakeProvider
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.support import app_client
from user_service.app.config import UserSettings
from user_service.app.main import create_app as create_user_app

PASSWORD = "plum-Lantern-42"
SECRET = "s" * 40
API_KEY = "sk-live-4f9c2e7a1b8d6053-do-not-leak"


@dataclass
class LlmStack:
    llm_app: FastAPI
    llm: httpx.AsyncClient
    mobile: httpx.AsyncClient
    tokens: dict[str, dict[str, str]]  # username → Authorization header

    def auth(self, username: str) -> dict[str, str]:
        return self.tokens[username]

    async def user_id(self, username: str) -> str:
        async with llm_state(self.llm_app).sessionmaker() as session:
            user_id = (await session.execute(select(User.id).where(User.username == username))).scalar_one()
        return str(user_id)

    async def create_record(self, username: str, **fields: Any) -> dict[str, Any]:
        response = await self.mobile.post("/api/v1/records", headers=self.auth(username), json=fields)
        assert response.status_code == 201, response.text
        return response.json()

    async def wait_for_ai(self, username: str, record_id: str) -> dict[str, Any]:
        """Poll until the record's analysis is done or failed (a generous bound)."""
        record: dict[str, Any] = {}
        for _ in range(240):
            response = await self.mobile.get(f"/api/v1/records/{record_id}", headers=self.auth(username))
            assert response.status_code == 200, response.text
            record = response.json()
            if record["ai"]["status"] in ("done", "failed"):
                return record
            await asyncio.sleep(0.25)
        raise AssertionError(f"analysis of {record_id} stayed {record.get('ai')}")


def remote_settings(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    """The environment's default provider: the fake one."""
    return {
        "llm_provider": "custom",
        "llm_base_url": fake.base_url,
        "llm_model": "env-model",
        "llm_api_key": "sk-env-key-for-the-fake",
        **extra,
    }


@asynccontextmanager
async def llm_stack(
    make_settings: Callable[..., Any], database_url: str, users: tuple[str, ...] = ("alice", "bob"), **llm: Any
) -> AsyncIterator[LlmStack]:
    """The first user registered (alice) is the instance's admin."""
    common = {"database_url": database_url, "secret_key": SECRET}
    async with AsyncExitStack() as stack:
        # The digest scheduler is off: only what a test does reaches the provider.
        llm = {"analysis_retry_seconds": 0.2, "scheduler_interval_seconds": 0, **llm}
        llm_settings = make_settings(LlmSettings, **common, **llm)
        llm_app = create_llm_app(llm_settings)
        llm_client = await stack.enter_async_context(app_client(llm_app))
        user_app = create_user_app(make_settings(UserSettings, **common))
        user_client = await stack.enter_async_context(app_client(user_app))
        mobile_settings = make_settings(MobileSettings, **common, llm_url="http://127.0.0.1:9")
        mobile = await stack.enter_async_context(app_client(create_mobile_app(mobile_settings)))
        tokens = {}
        for username in users:
            registered = await user_client.post(
                "/api/v1/auth/register", json={"username": username, "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
            token = await user_client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
            tokens[username] = {"Authorization": f"Bearer {token.json()['access_token']}"}
        yield LlmStack(llm_app, llm_client, mobile, tokens)


async def queue_drained(redis: Redis) -> None:
    """Wait until the analysis workers have read every record event and none is pending."""
    queue = analysis_queue(redis)
    for _ in range(240):
        if (await queue.status()).drained:
            return
        await asyncio.sleep(0.25)
    raise AssertionError("the analysis queue did not drain")
