"""A stack for the chat tests: llm_service, mobile_service and web_service each served over
real HTTP (so streams are relayed as they are, unbuffered), user_service in-process for
logins; one database, one Redis; the LLM provider is the fake one (`fake_provider.py`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from common.database import create_engine
from llm_service.app.config import LlmSettings
from llm_service.app.main import create_app as create_llm_app
from llm_service.tests.fake_provider import FakeProvider, ReceivedRequest
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.support import SseMessage, app_client, serve_app, sse_messages
from user_service.app.config import UserSettings
from user_service.app.main import create_app as create_user_app
from web_service.app.config import WebSettings
from web_service.app.main import create_app as create_web_app

PASSWORD = "plum-Lantern-42"
SECRET = "s" * 40
ANALYSIS = json.dumps({"title": "A note", "summary": "A short note.", "tags": ["note"]})


# A streamed chat answer's events (`delta`, `done`, `error`; `comment` for `: ping`).
SseEvent = SseMessage
sse_events = sse_messages


@dataclass
class ChatStack:
    llm: httpx.AsyncClient
    mobile: httpx.AsyncClient
    web: httpx.AsyncClient
    engine: AsyncEngine  # the same database, for asserting what is (not) stored
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # username → Authorization
    user_ids: dict[str, str] = field(default_factory=dict)

    async def record(self, username: str, **fields: Any) -> dict[str, Any]:
        response = await self.mobile.post("/api/v1/records", headers=self.headers[username], json=fields)
        assert response.status_code == 201, response.text
        return response.json()

    async def conversation(self, username: str, client: httpx.AsyncClient | None = None, **fields: Any) -> str:
        response = await (client or self.mobile).post(
            "/api/v1/chat/conversations", headers=self.headers[username], json=fields
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def ask(
        self, username: str, conversation_id: str, content: str, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        return await (client or self.mobile).post(
            f"/api/v1/chat/conversations/{conversation_id}/messages",
            headers=self.headers[username],
            json={"content": content},
        )

    async def ask_streaming(
        self, username: str, conversation_id: str, content: str, client: httpx.AsyncClient | None = None
    ) -> tuple[httpx.Response, list[SseEvent]]:
        url = f"/api/v1/chat/conversations/{conversation_id}/messages"
        body = {"content": content, "stream": True}
        async with (client or self.mobile).stream("POST", url, headers=self.headers[username], json=body) as response:
            if response.status_code != 201:
                await response.aread()
                return response, []
            events = [event async for event in sse_events(response)]
        return response, events


def answer_requests(fake: FakeProvider) -> list[ReceivedRequest]:
    """The provider calls that answered a question: streamed (analysis and memory extraction
    are not)."""
    return [r for r in fake.chat_requests if isinstance(r.json, dict) and r.json.get("stream") is True]


def memory_requests(fake: FakeProvider) -> list[ReceivedRequest]:
    """The provider calls that asked for memories (their system prompt asks for `{"memories": …}`)."""
    return [r for r in fake.chat_requests if isinstance(r.json, dict) and '"memories"' in _messages(r)[0]]


def _messages(request: ReceivedRequest) -> list[str]:
    body = request.json if isinstance(request.json, dict) else {}
    return [m["content"] for m in body.get("messages", []) if isinstance(m.get("content"), str)] or [""]


def chat_text(fake: FakeProvider) -> str:
    """What the provider was sent for chat answers only."""
    return "\n".join(text for request in answer_requests(fake) for text in _messages(request))


def remote(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    """llm_service settings whose default provider is the fake one."""
    return {
        "llm_provider": "custom",
        "llm_base_url": fake.base_url,
        "llm_model": "fake",
        "llm_api_key": "sk-test-key-for-the-fake",
        "llm_allowed_hosts": [fake.host_port],
        **extra,
    }


@asynccontextmanager
async def chat_stack(
    make_settings: Callable[..., Any], database_url: str, users: tuple[str, ...] = ("alice", "bob"), **llm: Any
) -> AsyncIterator[ChatStack]:
    common = {"database_url": database_url, "secret_key": SECRET}
    timeout = httpx.Timeout(30.0)
    async with AsyncExitStack() as stack:
        llm_settings = make_settings(LlmSettings, **common, analysis_retry_seconds=0.2, **llm)
        llm_url = await stack.enter_async_context(serve_app(create_llm_app(llm_settings)))
        mobile_url = await stack.enter_async_context(
            serve_app(create_mobile_app(make_settings(MobileSettings, **common, llm_url=llm_url)))
        )
        web_url = await stack.enter_async_context(
            serve_app(create_web_app(make_settings(WebSettings, **common, llm_url=llm_url)))
        )
        users_client = await stack.enter_async_context(
            app_client(create_user_app(make_settings(UserSettings, **common)))
        )
        llm_client, mobile_client, web_client = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=timeout))
            for url in (llm_url, mobile_url, web_url)
        ]
        engine = create_engine(database_url)
        stack.push_async_callback(engine.dispose)
        chat = ChatStack(llm_client, mobile_client, web_client, engine=engine)
        for username in users:
            registered = await users_client.post(
                "/api/v1/auth/register", json={"username": username, "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
            token = await users_client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
            chat.headers[username] = {"Authorization": f"Bearer {token.json()['access_token']}"}
            chat.user_ids[username] = registered.json()["id"]
        yield chat
