"""What web_service's tests share: the stack (user_service over HTTP, web_service in-process
or served), a browser-like client that keeps the refresh cookie, an SSE reader, and what the
share page's tests check of a page (tests/records/test_sharing.py uses these too)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from tests.support import SseMessage, serve_app, sse_messages
from web_service.app.config import WebSettings
from web_service.app.main import create_app as create_web_app

PASSWORD = "plum-Lantern-42"
SECRET = "w" * 40
SESSION = "/api/v1/auth/session"
REFRESH = "/api/v1/auth/session/refresh"
ME = "/api/v1/users/me"
EVENTS = "/api/v1/events"
RECORDS = "/api/v1/records"
WEB_ORIGIN = "http://testserver"
# What a test waits for at most; only a bug makes it wait that long.
PATIENCE = 20.0
# The share page's Content-Security-Policy: no script, no inline style, nothing from elsewhere.
SHARE_PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_UNSET: Any = object()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class SetCookie:
    """One `Set-Cookie` header, its attributes by lower-case name (flags map to "")."""

    name: str
    value: str
    attributes: dict[str, str]
    raw: str

    @classmethod
    def parse(cls, header: str) -> SetCookie:
        first, *rest = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        attributes = {}
        for part in rest:
            key, _, attribute = part.partition("=")
            attributes[key.lower()] = attribute
        return cls(name, value, attributes, header)


def set_cookies(response: httpx.Response) -> list[SetCookie]:
    return [SetCookie.parse(header) for header in response.headers.get_list("set-cookie")]


def refresh_cookie_of(response: httpx.Response) -> SetCookie | None:
    cookies = [cookie for cookie in set_cookies(response) if cookie.name == "jilu_refresh"]
    assert len(cookies) <= 1, cookies
    return cookies[0] if cookies else None


class Browser:
    """An in-process client that behaves like the web app's page: it sends its `Origin` and
    keeps the `jilu_refresh` cookie as a browser would (by hand, so a test sees each step)."""

    def __init__(self, client: httpx.AsyncClient, origin: str | None) -> None:
        self.client = client
        self.origin = origin
        self.cookie: str | None = None

    async def request(
        self, method: str, url: str, *, origin: str | None = _UNSET, cookie: str | None = _UNSET, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        origin = self.origin if origin is _UNSET else origin
        cookie = self.cookie if cookie is _UNSET else cookie
        if origin is not None:
            headers["Origin"] = origin
        if cookie is not None:
            headers["Cookie"] = f"jilu_refresh={cookie}"
        response = await self.client.request(method, url, headers=headers, **kwargs)
        self.client.cookies.clear()  # only what this class keeps is ever sent
        stored = refresh_cookie_of(response)
        if stored is not None:
            self.cookie = None if stored.attributes.get("max-age") == "0" else stored.value
        return response

    async def login(self, username: str, password: str = PASSWORD, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", SESSION, json={"username": username, "password": password}, **kwargs)

    async def logged_in(self, username: str) -> str:
        """Log in; the access token."""
        response = await self.login(username)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def refresh(self, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", REFRESH, **kwargs)

    async def logout(self, access_token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **(bearer(access_token) if access_token else {})}
        return await self.request("DELETE", SESSION, headers=headers, **kwargs)

    async def me(self, access_token: str) -> httpx.Response:
        return await self.request("GET", ME, headers=bearer(access_token))


class WebStack:
    """user_service (over HTTP at `user_url`) and one web_service app, started on demand."""

    def __init__(self, user_url: str, settings: WebSettings, redis: Redis) -> None:
        self.user_url = user_url
        self.settings = settings
        self.redis = redis
        self.app: FastAPI = create_web_app(settings)
        self._exits = AsyncExitStack()
        self._mode: str | None = None
        self.web_url = ""
        self.users = httpx.AsyncClient(base_url=user_url, timeout=PATIENCE)

    async def aclose(self) -> None:
        await self._exits.aclose()
        await self.users.aclose()

    async def _start(self, mode: str) -> None:
        assert self._mode in (None, mode), "an app runs either in-process or served, not both"
        if self._mode is None:
            self._mode = mode
            if mode == "in-process":
                await self._exits.enter_async_context(self.app.router.lifespan_context(self.app))
            else:
                self.web_url = await self._exits.enter_async_context(serve_app(self.app))

    async def browser(
        self, *, peer: tuple[str, int] = ("127.0.0.1", 50000), base_url: str = WEB_ORIGIN, origin: str | None = _UNSET
    ) -> Browser:
        """A browser on the in-process app, connecting from `peer` to `base_url`; its pages'
        origin is `base_url` unless given."""
        await self._start("in-process")
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False, client=peer)
        client = await self._exits.enter_async_context(httpx.AsyncClient(transport=transport, base_url=base_url))
        return Browser(client, base_url if origin is _UNSET else origin)

    async def served(self) -> httpx.AsyncClient:
        """A client of the app served over real HTTP (what streams need)."""
        await self._start("served")
        return await self._exits.enter_async_context(httpx.AsyncClient(base_url=self.web_url, timeout=PATIENCE))

    async def register(self, username: str) -> str:
        """Register on user_service; the user's id."""
        response = await self.users.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def token(self, username: str) -> str:
        """Log in on user_service itself (the mobile way); the access token."""
        response = await self.users.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def session_count(self) -> int:
        return len([key async for key in self.redis.scan_iter("jilu:session:*")])


class EventReader:
    """An open `GET /api/v1/events`, read message by message with a time bound. `hello` is
    the stream's first message, read by `open_events` (the reader starts after it)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._messages = sse_messages(response)
        self.ended = False
        self.hello: SseMessage | None = None

    @property
    def cursor(self) -> int:
        """The sync cursor the stream's `hello` carried."""
        assert self.hello is not None, "the hello was not read"
        return int(self.hello.data["cursor"])

    async def next(self, timeout: float = PATIENCE) -> SseMessage | None:
        """The next message (pings included); None once the stream has closed."""
        try:
            return await asyncio.wait_for(anext(self._messages), timeout)
        except StopAsyncIteration:
            self.ended = True
            return None

    async def next_event(self, timeout: float = PATIENCE) -> SseMessage | None:
        """The next message that is not a ping; None once the stream has closed."""
        while True:
            message = await self.next(timeout)
            if message is None or message.event != "comment":
                return message

    async def events_until_ping(self, timeout: float = PATIENCE) -> list[SseMessage]:
        """Every non-ping message up to the next ping: what was sent before it."""
        received: list[SseMessage] = []
        while True:
            message = await self.next(timeout)
            assert message is not None, "the stream closed"
            if message.event == "comment":
                return received
            received.append(message)


@asynccontextmanager
async def open_events(
    client: httpx.AsyncClient, token: str, last_event_id: str | None = None
) -> AsyncIterator[EventReader]:
    headers = bearer(token)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with client.stream("GET", EVENTS, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        reader = EventReader(response)
        hello = await reader.next()
        # First, before any replay, reset or live event, and with no id (Last-Event-ID stays).
        assert hello is not None and (hello.event, hello.id) == ("hello", None), hello
        assert set(hello.data) == {"cursor"} and isinstance(hello.data["cursor"], int), hello
        reader.hello = hello
        yield reader


async def create(client: httpx.AsyncClient, token: str, content: str = "worth keeping") -> dict[str, Any]:
    response = await client.post(RECORDS, json={"content": content}, headers=bearer(token))
    assert response.status_code == 201, response.text
    return response.json()


async def record_events(reader: EventReader, count: int) -> list[SseMessage]:
    """The next `count` messages that are not pings."""
    received: list[SseMessage] = []
    for _ in range(count):
        message = await reader.next_event()
        assert message is not None, f"the stream closed after {received}"
        received.append(message)
    return received


async def nothing_more(reader: EventReader) -> None:
    """Two heartbeats pass with no event in between: nothing else was coming."""
    assert await reader.events_until_ping() == []
    assert await reader.events_until_ping() == []


# -- the share page ------------------------------------------------------------------------


class Elements(HTMLParser):
    """Every element of a page with its attributes, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def tags(self, name: str) -> list[dict[str, str]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def assert_inert(html: str) -> Elements:
    """No script element, no event-handler attribute, no script URL anywhere in `html`."""
    page = Elements(html)
    names = {tag for tag, _ in page.elements}
    assert not names & {"script", "iframe", "object", "embed", "svg"}, names
    for tag, attrs in page.elements:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            if name in {"href", "src", "action", "formaction", "xlink:href"}:
                scheme = re.sub(r"[\s\x00-\x1f]", "", value).lower()
                assert not scheme.startswith(("javascript:", "vbscript:", "data:text")), (tag, name, value)
    return page


async def page_is_gone(web: httpx.AsyncClient, url: str) -> None:
    """The share page at `url` answers the "no such link" page, under the page's CSP."""
    response = await web.get(url)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "这个链接不存在或已失效" in response.text
    assert response.headers["content-security-policy"] == SHARE_PAGE_CSP
