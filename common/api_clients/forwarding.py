"""Relaying a request to the service that owns it, and its response back, without buffering."""

from __future__ import annotations

import httpx
from fastapi import Request
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from common.api_clients.services import ServiceClient
from common.config import JiluSettings
from common.errors import UpstreamError, UpstreamTimeout
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


def client_headers(request: Request, settings: JiluSettings) -> list[tuple[str, str]]:
    """Headers that tell the owner who the client of `request` is, so its per-address rate
    limits see the browser's address: signed with the instance secret, which only a Jilu
    service has (an X-Forwarded-For the client made up is not passed on)."""
    address = client_address(request, settings)
    return [*signed_client_headers(settings.secret, address), ("x-forwarded-for", address)]


def _request_headers(request: Request, settings: JiluSettings) -> list[tuple[str, str]]:
    # The client's X-Request-ID is dropped too: the http client sends the id this request runs
    # under, which is a new one when the client's was missing or malformed. Cookies are dropped:
    # no service behind a relay uses them, and the refresh cookie must not leave the one that set it.
    dropped = HOP_BY_HOP | {
        "cookie",
        "x-forwarded-for",
        "x-request-id",
        CLIENT_ADDRESS_HEADER,
        CLIENT_SIGNATURE_HEADER,
    }
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in dropped]
    return headers + client_headers(request, settings)


def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers


def _response_headers(response: httpx.Response, target: ServiceClient) -> dict[str, str]:
    # Raw bytes are relayed, so content-encoding and content-length stay true.
    dropped = HOP_BY_HOP | SERVER_SET | {"x-request-id"}
    headers = {k: v for k, v in response.headers.items() if k.lower() not in dropped}
    if "location" in headers:
        headers["location"] = _client_facing_location(headers["location"], target)
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
    upstream_path = path if path is not None else request.url.path
    upstream = target.client.build_request(
        request.method,
        target.url(upstream_path),
        params=tuple(request.query_params.multi_items()),
        headers=_request_headers(request, settings),
        content=request.stream() if _has_body(request) else None,
    )
    try:
        response = await target.client.send(upstream, stream=True)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{target.service} did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{target.service} is unreachable") from exc
    return StreamingResponse(
        response.aiter_raw(),
        status_code=response.status_code,
        headers=_response_headers(response, target),
        background=BackgroundTask(response.aclose),
    )
