"""Relaying requests to a real downstream service: status, headers, query, bodies, streaming,
and the errors when it is unreachable or too slow."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import StreamingResponse

from common.api_clients import ServiceClient, forward
from common.app import create_service_app
from common.deps import ServicesDep, SettingsDep
from common.forwarded import forwarding_router
from tests.common.conftest import Probe
from tests.support import app_client, assert_error, free_port, serve_app
from user_service.app.config import UserSettings
from user_service.app.main import create_app as create_user_app
from web_service.app.config import WebSettings

# Only a deadlock (a buffered stream) could take this long; it is no performance threshold.
DEADLOCK_GUARD = 60


def upstream_app(make_settings: Callable[..., Any], user_url: str, **overrides: Any) -> FastAPI:
    """A client-facing service relaying `/probe/*` to `user`, plus two hand-written relays."""
    router = APIRouter()

    @router.api_route("/test/explicit", methods=["GET", "POST"])
    async def explicit(request: Request, services: ServicesDep, settings: SettingsDep) -> StreamingResponse:
        target = ServiceClient("user", user_url, services["user"].client)
        return await forward(request, target, settings, path="/probe/echo")

    @router.get("/test/via-client")
    async def via_client(services: ServicesDep, path: str = "/probe/echo") -> Any:
        return (await services["user"].get(path)).json()

    settings = make_settings(WebSettings, user_url=user_url, **overrides)
    relay = forwarding_router(["/probe"], "user", tag="test")
    return create_service_app("web_service", settings, routers=[relay, router])


@pytest.fixture
def upstream(make_settings: Callable[..., Any], downstream: Probe) -> FastAPI:
    return upstream_app(make_settings, downstream.url)


@pytest.mark.parametrize("status", [200, 201, 404, 429, 503])
async def test_status_headers_and_body_are_relayed(upstream: FastAPI, status: int) -> None:
    async with app_client(upstream) as client:
        response = await client.get(f"/probe/status/{status}")
    assert response.status_code == status
    assert response.json() == {"status": status}
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-probe"] == "yes"
    assert response.headers["content-length"] == str(len(response.content))
    assert len(response.headers.get_list("x-request-id")) == 1  # the upstream's own, not two


async def test_query_string_is_relayed(upstream: FastAPI) -> None:
    params = (("q", "西湖 walk"), ("tag", "a"), ("tag", "b&c"))
    async with app_client(upstream) as client:
        seen = (await client.get("/probe/echo", params=params)).json()
    assert seen["path"] == "/probe/echo"
    assert seen["query"] == [list(pair) for pair in params]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_json_body_and_method_are_relayed(upstream: FastAPI, method: str) -> None:
    body = '{"content": "今天去了西湖", "tags": ["生活"]}'.encode()
    async with app_client(upstream) as client:
        response = await client.request(
            method, "/probe/echo", content=body, headers={"content-type": "application/json"}
        )
    seen = response.json()
    assert (seen["method"], seen["content_type"]) == (method, "application/json")
    assert (seen["body_size"], seen["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


async def test_cookies_are_not_relayed(upstream: FastAPI) -> None:
    # The refresh cookie is the web service's own; no owner behind a relay may see it.
    headers = {"cookie": "jilu_refresh=secret-refresh-token; other=1", "authorization": "Bearer access"}
    async with app_client(upstream) as client:
        seen = (await client.get("/probe/echo", headers=headers)).json()
        explicit = (await client.get("/test/explicit", headers=headers)).json()
    assert (seen["cookie"], explicit["cookie"]) == (None, None)
    assert (seen["authorization"], explicit["authorization"]) == ("Bearer access", "Bearer access")


async def test_large_body_is_relayed_intact(upstream: FastAPI) -> None:
    body = os.urandom(8 * 1024 * 1024 + 17)
    async with app_client(upstream) as client:
        seen = (await client.post("/probe/echo", content=body)).json()
    assert (seen["body_size"], seen["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


async def test_the_path_is_relayed_as_the_client_encoded_it(upstream: FastAPI) -> None:
    # An encoded "?" belongs to the path: the owner has no such path, so it is not /probe/echo.
    async with app_client(upstream) as client:
        encoded = await client.get("/probe/echo%3Fpage=2")
        plain = (await client.get("/probe/ech%6F", params={"page": "2"})).json()
    assert encoded.status_code == 404
    assert (plain["path"], plain["query"]) == ("/probe/echo", [["page", "2"]])


@pytest.mark.parametrize("path", ["/probe/x/../echo", "/probe/./echo", "/probe/x/%2e%2e/echo", "/probe/%2E/echo"])
async def test_a_path_with_dot_segments_is_404_and_never_relayed(upstream: FastAPI, path: str) -> None:
    # httpx resolves dot segments: relayed, `/api/v1/chat/../../metrics` would reach a path
    # of the owner's that is never relayed (its /metrics, its internal routes). Here the
    # resolved path, /probe/echo, exists: relaying it would answer 200. Sent over a real
    # socket, since an httpx client would resolve the dots before sending.
    async with serve_app(upstream) as url:
        status, body = await asyncio.to_thread(_raw_get, url, path)
    assert status == 404, body
    assert json.loads(body)["error"] == "not_found"


def _raw_get(url: str, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=DEADLOCK_GUARD)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


async def test_forward_to_another_path_keeps_query_and_body(upstream: FastAPI) -> None:
    async with app_client(upstream) as client:
        seen = (await client.post("/test/explicit", params={"page": "2"}, content=b"hello")).json()
    assert (seen["path"], seen["query"], seen["body_size"]) == ("/probe/echo", [["page", "2"]], 5)


async def test_streamed_response_is_relayed_chunk_by_chunk(upstream: FastAPI, downstream: Probe) -> None:
    # A real server on both sides: the in-process transport would buffer the whole body.
    async with serve_app(upstream) as url, httpx.AsyncClient(base_url=url, timeout=DEADLOCK_GUARD) as client:
        async with client.stream("GET", "/probe/stream") as response:
            assert response.status_code == 200
            chunks = response.aiter_bytes()
            received = b""
            while not received.endswith(b"\n"):
                received += await asyncio.wait_for(anext(chunks), DEADLOCK_GUARD)
            assert received == b"first\n"
            assert not downstream.finished.is_set()  # the downstream is still mid-response
            downstream.release.set()
            rest = b"".join([chunk async for chunk in chunks])
    assert rest == b"second\n"
    assert downstream.finished.is_set()


@pytest.mark.parametrize("path", ["/probe/echo", "/test/via-client", "/test/explicit"])
async def test_a_service_that_is_not_running_is_503_with_retry_after(
    make_settings: Callable[..., Any], path: str
) -> None:
    app = upstream_app(make_settings, f"http://127.0.0.1:{free_port()}")
    async with app_client(app) as client:
        response = await client.get(path)
    detail = assert_error(response, 503, "service_unavailable")
    assert detail == "user_service is unavailable; try again shortly"
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("path", ["/probe/slow", "/test/via-client?path=/probe/slow"])
async def test_too_slow_service_is_504(make_settings: Callable[..., Any], downstream: Probe, path: str) -> None:
    # The downstream answers only when released, which the test never does: no race on time.
    app = upstream_app(make_settings, downstream.url, http_timeout=0.2)
    async with app_client(app) as client:
        detail = assert_error(await client.get(path), 504, "upstream_timeout")
    assert detail == "user_service did not answer in time"


async def test_a_forwarded_answer_has_one_date_and_server_header(
    make_settings: Callable[..., Any], build_app: Callable[..., FastAPI]
) -> None:
    # Over real HTTP on both sides: uvicorn writes Date (and Server) itself, so the owner's
    # copies would be doubled by the relay; the in-process transport shows neither.
    async with serve_app(create_user_app(make_settings(UserSettings))) as user_url:
        mobile = build_app("mobile", user_url=user_url)
        async with serve_app(mobile) as url, httpx.AsyncClient(base_url=url) as client:
            forwarded = await client.get("/api/v1/users/me")
            local = await client.get("/api/v1/records")
    assert_error(forwarded, 401, "unauthorized")
    assert_error(local, 401, "unauthorized")
    for response in (forwarded, local):
        assert len(response.headers.get_list("date")) == 1, response.headers
        assert len(response.headers.get_list("server")) == 1, response.headers
