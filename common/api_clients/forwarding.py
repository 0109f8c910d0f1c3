"""Relaying a request to the service that owns it, and its response back, without buffering."""

from __future__ import annotations

import asyncio
import functools
import time
from urllib.parse import unquote

import anyio
import httpx
from fastapi import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from common.api_clients.services import ServiceClient
from common.config import JiluSettings
from common.errors import NotFound, UpstreamError, UpstreamTimeout
from common.security.client_address import (
    CLIENT_ADDRESS_HEADER,
    CLIENT_SIGNATURE_HEADER,
    client_address,
    signed_client_headers,
)

# Headers that belong to one hop only (RFC 9110 §7.6.1), and `host`, which httpx sets.
# Content-Length is kept: the body is relayed byte for byte.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
}

# OPTIONS too: the owner knows which methods a path takes (`common.middleware.AllowedMethodsMiddleware`).
FORWARD_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Response headers the server sending the answer writes itself: relayed, they would be doubled.
SERVER_SET = {"date", "server"}

# What is not passed on, as the raw lower-case names ASGI and httpx carry (filtered without
# decoding every header: a relay does this twice per request). The client's X-Request-ID is
# dropped: the http client sends the id this request runs under, which is a new one when the
# client's was missing or malformed. Cookies are dropped: no service behind a relay uses them,
# and the refresh cookie must not leave the one that set it. A client's trace context is
# dropped too: the relay sends its own when tracing is on (`common.tracing`).
_NOT_RELAYED_UP = frozenset(
    name.encode()
    for name in HOP_BY_HOP
    | {"cookie", "x-forwarded-for", "x-request-id", CLIENT_ADDRESS_HEADER, CLIENT_SIGNATURE_HEADER}
    | {"traceparent", "tracestate", "baggage"}
)
# Raw bytes are relayed, so content-encoding and content-length stay true.
_NOT_RELAYED_DOWN = frozenset(name.encode() for name in HOP_BY_HOP | SERVER_SET | {"x-request-id"})


def client_headers(request: Request, settings: JiluSettings) -> list[tuple[str, str]]:
    """Headers that tell the owner who the client of `request` is, so its per-address rate
    limits see the browser's address: signed with the instance secret, which only a Jilu
    service has (an X-Forwarded-For the client made up is not passed on)."""
    address = client_address(request, settings)
    return [*signed_client_headers(settings.secret, address), ("x-forwarded-for", address)]


@functools.lru_cache(maxsize=256)
def _vouching_headers(secret: str, address: str, second: int) -> tuple[tuple[bytes, bytes], ...]:
    # The signature covers the address and the second, so within a second it is the same:
    # two HMACs a relayed request need not compute again.
    signed = signed_client_headers(secret, address)
    return tuple((k.encode(), v.encode("latin-1")) for k, v in [*signed, ("x-forwarded-for", address)])


def _request_headers(request: Request, settings: JiluSettings) -> list[tuple[bytes, bytes]]:
    headers = [(k, v) for k, v in request.scope["headers"] if k not in _NOT_RELAYED_UP]
    address = client_address(request, settings)
    headers.extend(_vouching_headers(settings.secret, address, int(time.time())))
    return headers


def _has_body(request: Request) -> bool:
    return any(
        (name == b"content-length" and value != b"0") or name == b"transfer-encoding"
        for name, value in request.scope["headers"]
    )


def _climbs(path: str) -> bool:
    """Whether `path` has a `.` or `..` segment, plain or percent-encoded: httpx resolves
    them, so `/api/v1/chat/../../metrics` would reach a path of the owner's that is never
    relayed."""
    return any(segment in (".", "..") for segment in unquote(path).split("/"))


def _upstream_url(request: Request, target: ServiceClient, path: str | None) -> str:
    """The owner's URL for `request`: its path as the client sent it (still percent-encoded,
    so an encoded `?` or `/` stays what it was) or `path`, and its query string untouched.
    A path with dot segments is not relayed: 404, as for any path the relay does not own."""
    scope = request.scope
    if path is None:
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
    if _climbs(path):
        raise NotFound()
    url = target.url(path)
    query = scope.get("query_string", b"")
    return f"{url}?{query.decode('latin-1')}" if query else url


def _response_headers(response: httpx.Response, target: ServiceClient) -> list[tuple[bytes, bytes]]:
    headers = []
    for name, value in response.headers.raw:
        name = name.lower()
        if name in _NOT_RELAYED_DOWN:
            continue
        if name == b"location":
            value = _client_facing_location(value.decode("latin-1"), target).encode("latin-1")
        headers.append((name, value))
    return headers


def _client_facing_location(value: str, target: ServiceClient) -> str:
    """A redirect the owner makes to itself (e.g. FastAPI's trailing-slash 307) names its
    internal address, which the client can neither reach nor should learn: make it a path
    on the address the client used, like a reverse proxy does."""
    try:
        location, internal = httpx.URL(value), httpx.URL(target.base_url)
    except httpx.InvalidURL:
        return value
    same_origin = (location.scheme, location.host, location.port) == (internal.scheme, internal.host, internal.port)
    return location.raw_path.decode("ascii") if location.is_absolute_url and same_origin else value


async def forward(
    request: Request, target: ServiceClient, settings: JiluSettings, path: str | None = None
) -> StreamingResponse:
    """Send `request` to `target` (same path and query unless `path` is given) and stream the
    answer back chunk by chunk: status, headers and body as the owner sent them. `settings`
    say whom to believe about the client's address, and sign it for the owner."""
    upstream = target.client.build_request(
        request.method,
        _upstream_url(request, target, path),
        headers=_request_headers(request, settings),
        content=request.stream() if _has_body(request) else None,
    )
    try:
        response = await target.client.send(upstream, stream=True)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{target.service} did not answer in time") from exc
    except httpx.ConnectError as exc:  # not running (or restarting): 503, come back shortly
        raise target.unavailable() from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{target.service} is unreachable") from exc
    return RelayedResponse(response, _response_headers(response, target))


class RelayedResponse(StreamingResponse):
    """The owner's answer, sent on as each chunk arrives (never buffered). Starlette's own
    `StreamingResponse.__call__` does the same through an anyio task group, whose set-up and
    cancellation cost more per request than the relaying itself.

    While it streams, the client's connection is watched: when the client leaves, the
    relaying stops and the owner's connection is closed, so the owner stops its work (a chat
    answer cancels its provider call)."""

    def __init__(self, upstream: httpx.Response, headers: list[tuple[bytes, bytes]]) -> None:
        # The raw stream (not `aiter_raw()`): the bytes as they came, without the per-chunk
        # bookkeeping a relay has no use for.
        stream = upstream.stream
        assert isinstance(stream, httpx.AsyncByteStream)  # an `AsyncClient`'s response
        self.body_iterator = stream
        self.status_code = upstream.status_code
        self.raw_headers = headers
        self.background = None
        self._upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with anyio.CancelScope() as relaying:
                watcher = asyncio.create_task(_cancel_on_disconnect(receive, relaying))
                try:
                    await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                    async for chunk in self.body_iterator:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                finally:
                    watcher.cancel()
        finally:
            await self._upstream.aclose()
        if self.background is not None:
            await self.background()


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
