"""The public share page, `GET /s/<slug>`: a shared record as a readable HTML page.

Flask runs in a2wsgi's worker threads while the database layer is async, so the page runs
its lookup on the serving app's event loop (`asyncio.run_coroutine_threadsafe`) and waits
for it. `SharedRecords` carries what that needs; web_service binds it at start-up.

The record's Markdown is rendered with raw HTML escaped and unsafe link schemes
(`javascript:`, `vbscript:`, `file:`, non-image `data:`) refused, and the page is sent
with a Content-Security-Policy that allows no script at all, should anything slip through,
and styles only from the web app's own `share.css`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, render_template, request
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request as AsgiRequest
from starlette.types import Scope

from common.config import JiluSettings
from common.database import transaction
from common.errors import JiluError, RateLimited, ServiceUnavailable
from common.records.schemas import PublicRecord
from common.records.sharing import service
from common.security.client_address import client_address
from common.security.rate_limit import RateLimiter

LOOKUP_TIMEOUT = 10.0  # seconds a page waits for the database before answering 503

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    # A revoked link must stop working at once, so no copy is kept anywhere.
    "Cache-Control": "no-store",
}

KIND_LABELS = {
    "note": "笔记 · Note",
    "diary": "日记 · Diary",
    "todo": "待办 · To-do",
    "photo": "照片 · Photo",
    "screenshot": "截图 · Screenshot",
    "voice": "语音 · Voice",
    "link": "链接 · Link",
}


def _link_open(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    # Links lead away from a page nobody vouches for: no referrer, no ranking credit.
    tokens[idx].attrSet("rel", "nofollow ugc noopener noreferrer")
    return str(self.renderToken(tokens, idx, options, env))


# CommonMark without raw HTML: `<script>` and friends come out as text. markdown-it's
# `validateLink` drops links whose scheme is javascript:, vbscript:, file: or data: (bar images).
_markdown = MarkdownIt("commonmark", {"html": False})
_markdown.add_render_rule("link_open", _link_open)


def render_markdown(text: str) -> str:
    """Safe HTML for a record's Markdown."""
    return _markdown.render(text)


@dataclass(frozen=True)
class _Running:
    """What a page needs of the running app: its loop and the collaborators of a lookup."""

    loop: asyncio.AbstractEventLoop
    rate_limiter: RateLimiter
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: JiluSettings


class SharedRecords:
    """The bridge from Flask's threads to the async app: its loop and collaborators.

    web_service's lifespan calls `bind` (`web_service.app.main`); until it has, and after
    shutdown, pages answer 503.
    """

    def __init__(self, timeout: float = LOOKUP_TIMEOUT) -> None:
        self.timeout = timeout
        self._running: _Running | None = None  # one attribute: threads see all of it or none

    def bind(
        self,
        rate_limiter: RateLimiter,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: JiluSettings,
        stack: AsyncExitStack,
    ) -> None:
        """From the app's event loop, at start-up: serve pages until `stack` closes."""
        self._running = _Running(asyncio.get_running_loop(), rate_limiter, sessionmaker, settings)
        stack.callback(self._unbind)

    def _unbind(self) -> None:
        self._running = None

    def client_address(self, scope: Scope) -> str | None:
        """The client of the ASGI request `scope`, by the API's rules (trusted proxies, signed
        hops); None while the app is not running."""
        running = self._running
        return client_address(AsgiRequest(scope), running.settings) if running is not None else None

    def lookup(self, slug: str, client: str) -> PublicRecord | None:
        """From a worker thread: count the read against `client`'s rate, then fetch the record
        shared under `slug`. Raises `RateLimited`, or `ServiceUnavailable` when the app is
        not running or too slow."""
        running = self._running
        if running is None or running.loop.is_closed():
            raise ServiceUnavailable("the service is starting or stopping; try again shortly")
        future = asyncio.run_coroutine_threadsafe(self._lookup(running, slug, client), running.loop)
        try:
            return future.result(timeout=self.timeout)
        except TimeoutError:
            future.cancel()
            raise ServiceUnavailable("the page took too long; try again shortly") from None

    @staticmethod
    async def _lookup(running: _Running, slug: str, client: str) -> PublicRecord | None:
        await service.count_public_read(running.rate_limiter, client)
        async with transaction(running.sessionmaker) as session:
            return await service.shared_record(session, slug)


def _client(records: SharedRecords) -> str:
    """The client's address, by the same rules as the API's (trusted proxies, signed hops)."""
    scope = request.environ.get("asgi.scope")  # a2wsgi hands the ASGI scope through
    address = records.client_address(scope) if scope is not None else None
    return address or request.remote_addr or "unknown"


def _problem_page(error: JiluError, stylesheet: str) -> Response:
    status = error.status_code
    page = render_template("share.html", record=None, status=status, stylesheet=stylesheet)
    response = Response(page, status=status)
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def share_blueprint(records: SharedRecords, *, stylesheet: str) -> Blueprint:
    """The share pages; `stylesheet` is the versioned URL of `share.css`."""
    pages = Blueprint("share", __name__)

    @pages.get("/s/<slug>")
    def share_page(slug: str) -> Response:
        try:
            record = records.lookup(slug, _client(records))
        except (RateLimited, ServiceUnavailable) as exc:
            return _problem_page(exc, stylesheet)
        if record is None:
            return Response(render_template("share.html", record=None, status=404, stylesheet=stylesheet), status=404)
        html = render_template(
            "share.html",
            stylesheet=stylesheet,
            record=record,
            kind_label=KIND_LABELS.get(record.kind, record.kind),
            content_html=render_markdown(record.content),
        )
        return Response(html, status=200)

    @pages.after_request
    def page_headers(response: Response) -> Response:
        response.headers.update(PAGE_HEADERS)
        return response

    return pages
