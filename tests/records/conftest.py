"""Fixtures for the record domain's tests: user_service (to register and log in), mobile_service
and web_service, all on one migrated database (SQLite, and PostgreSQL when one answers) and
the real test Redis, emptied before each test.

    async def test_x(records_stack, records_api, records_owner):
        record = await records_stack.create(records_api, records_owner, content="…")

`records_api` is the client of one port and runs each test twice, on mobile and on web.

The attachment tests use a smaller stack (`tests/records/attachment_support.py`: user_service
and mobile_service) through `make_stack`, `stack`, `owner` and `stranger`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from common.deps import service_state
from common.records.events import RECORD_EVENTS_STREAM
from common.records.models import Record
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.records import attachment_support as attachments
from tests.support import app_client
from user_service.app.config import UserSettings
from user_service.app.main import create_app as create_user_app
from web_service.app.config import WebSettings
from web_service.app.main import create_app as create_web_app

PASSWORD = "plum-Lantern-42"
RECORDS = "/api/v1/records"
PORTS = ("mobile", "web")


@dataclass(frozen=True)
class Account:
    """A registered user, logged in once."""

    id: str
    username: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class RecordsStack:
    """The three apps on one database and Redis, and short-hands for what most tests start with."""

    def __init__(self, apps: dict[str, FastAPI], clients: dict[str, httpx.AsyncClient], redis: Redis) -> None:
        self.apps = apps
        self.clients = clients
        self.redis = redis

    @property
    def mobile(self) -> httpx.AsyncClient:
        return self.clients["mobile"]

    @property
    def web(self) -> httpx.AsyncClient:
        return self.clients["web"]

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return service_state(self.apps["mobile"]).sessionmaker

    async def account(self, username: str) -> Account:
        """Register `username` on user_service and log in (argon2: reuse it within a test)."""
        users = self.clients["user"]
        response = await users.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
        user_id = response.json()["id"]
        response = await users.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return Account(user_id, username, response.json()["access_token"])

    async def create(self, client: httpx.AsyncClient, account: Account, **fields: Any) -> dict[str, Any]:
        """POST a record (content defaults to a placeholder); asserts 201, returns the record."""
        body = {"content": "something worth keeping", **fields}
        response = await client.post(RECORDS, json=body, headers=account.headers)
        assert response.status_code == 201, response.text
        return response.json()

    async def record_count(self, owner_id: str | None = None) -> int:
        """Rows in `records` (deleted ones included), straight from the database."""
        statement = select(func.count()).select_from(Record)
        if owner_id is not None:
            statement = statement.where(Record.owner_id == owner_id)
        async with self.sessionmaker() as session:
            return int((await session.execute(statement)).scalar_one())

    async def record_row(self, record_id: str) -> Record:
        """The stored row, hidden columns and all."""
        async with self.sessionmaker() as session:
            statement = select(Record).where(Record.id == record_id).options(undefer("*"))
            row = (await session.execute(statement)).scalar_one()
            session.expunge(row)
            return row

    async def events(self) -> list[dict[str, str]]:
        """Every record event on the stream so far, oldest first."""
        entries: list[tuple[str, dict[str, str]]] = await self.redis.xrange(RECORD_EVENTS_STREAM)  # type: ignore[assignment]
        return [fields for _, fields in entries]


@pytest.fixture
async def records_stack(
    make_settings: Callable[..., Any], migrated_database_url: str, redis: Redis
) -> AsyncIterator[RecordsStack]:
    """user_service, mobile_service and web_service sharing the test database, data dir
    (hence the instance secret) and Redis."""
    factories: dict[str, tuple[Callable[[Any], FastAPI], type]] = {
        "user": (create_user_app, UserSettings),
        "mobile": (create_mobile_app, MobileSettings),
        "web": (create_web_app, WebSettings),
    }
    apps: dict[str, FastAPI] = {}
    clients: dict[str, httpx.AsyncClient] = {}
    async with AsyncExitStack() as stack:
        for name, (create_app, settings_cls) in factories.items():
            apps[name] = create_app(make_settings(settings_cls, database_url=migrated_database_url))
            clients[name] = await stack.enter_async_context(app_client(apps[name]))
        yield RecordsStack(apps, clients, redis)


@pytest.fixture(params=PORTS)
def records_port(request: pytest.FixtureRequest) -> str:
    """The port a test talks to: every test that uses it runs on mobile and on web."""
    return str(request.param)


@pytest.fixture
def records_api(records_stack: RecordsStack, records_port: str) -> httpx.AsyncClient:
    return records_stack.clients[records_port]


@pytest.fixture
async def records_owner(records_stack: RecordsStack) -> Account:
    """The user whose records a test works with."""
    return await records_stack.account("owner")


@pytest.fixture
async def records_stranger(records_stack: RecordsStack, records_owner: Account) -> Account:
    """A second user, who must never reach anything of `records_owner`'s."""
    return await records_stack.account("stranger")


# -- the attachment tests' stack ----------------------------------------------------------


@pytest.fixture
def make_stack(make_settings: Callable[..., Any], migrated_database_url: str, redis: Redis) -> attachments.MakeStack:
    """`async with make_stack(**mobile_setting_overrides) as stack`: user_service and
    mobile_service on the test database and Redis (`attachment_support.open_stack`)."""
    return partial(attachments.open_stack, make_settings, migrated_database_url, redis)


@pytest.fixture
async def stack(make_stack: attachments.MakeStack) -> AsyncIterator[attachments.Stack]:
    """The attachment tests' stack on default settings."""
    async with make_stack() as built:
        yield built


@pytest.fixture
async def owner(stack: attachments.Stack) -> attachments.Account:
    """The user whose attachments a test works with."""
    return await stack.account("owner")


@pytest.fixture
async def stranger(stack: attachments.Stack, owner: attachments.Account) -> attachments.Account:
    """A second user, who must never reach anything of `owner`'s."""
    return await stack.account("stranger")
