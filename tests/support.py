"""Helpers for tests: free ports, running an app's lifespan, waiting for things."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypedDict, cast

import httpx
import uvicorn
from fastapi import FastAPI

from common.http_protocol import JiluHttpProtocol


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def app_client(app: FastAPI, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for `app` with its lifespan run (engine, Redis, clients made)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


# The password of the users the launched-stack tests sign up (a strong one: the real rules apply).
PASSWORD = "plum-Lantern-42"


def signed_up(client: httpx.Client, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Register `username` through `client`'s port and log in: the headers of its session."""
    client.post("/api/v1/auth/register", json={"username": username, "password": password}).raise_for_status()
    token = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


async def async_wait_until(predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


SERVER_STOP_SECONDS = 15.0


@asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` over real HTTP (uvicorn in a background thread, its own event loop) on a
    free port; yields its base URL and stops the server on exit."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The protocol the services run with (common/runner.py), so the wire behaves as deployed.
    config = uvicorn.Config(
        app,
        http=JiluHttpProtocol,
        proxy_headers=False,  # as common/runner.py serves every service
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        if not await async_wait_until(lambda: server.started or not thread.is_alive()) or not server.started:
            raise RuntimeError(f"the test server on port {port} did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, SERVER_STOP_SECONDS)
        if thread.is_alive():  # connections or tasks that would not end: stop without waiting
            server.force_exit = True
            await asyncio.to_thread(thread.join, SERVER_STOP_SECONDS)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"the test server on port {port} did not stop within {2 * SERVER_STOP_SECONDS:.0f}s")


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
}
# What the web port's Flask side (the web app, its assets and errors) answers with instead.
WEB_APP_SECURITY_HEADERS = {
    **SECURITY_HEADERS,
    "referrer-policy": "same-origin",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; font-src 'self'; worker-src 'self'; manifest-src 'self'; "
        "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


def assert_error(
    response: httpx.Response, status: int, code: str, security_headers: dict[str, str] = SECURITY_HEADERS
) -> object:
    """Assert Jilu's one error shape (`{"error", "detail"}`), the request id and the security
    headers; return the detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == code, body
    assert response.headers.get("x-request-id")
    for name, value in security_headers.items():
        assert response.headers.get(name) == value, name
    return body["detail"]


class FieldProblem(TypedDict):
    """One entry of a validation error's detail (`common.field_problems`)."""

    field: str  # `body.title`, `query.limit`, ...
    message: str
    type: str


def assert_problems(response: httpx.Response, status: int = 422, code: str = "validation_error") -> list[FieldProblem]:
    """`assert_error` for an error whose detail lists field problems; return them."""
    detail = assert_error(response, status, code)
    assert isinstance(detail, list), detail
    for problem in detail:
        assert isinstance(problem, dict) and set(problem) == FieldProblem.__required_keys__, problem
    # Checked just above; JSON carries no types of its own.
    return cast(list[FieldProblem], detail)


@dataclass
class SseMessage:
    event: str  # "message" when unnamed; "comment" for `: ping`
    data: Any = None
    id: str | None = None


async def sse_messages(response: httpx.Response) -> AsyncIterator[SseMessage]:
    """A Server-Sent Events body, message by message, as it arrives."""
    event, data, event_id = "", list[str](), None
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield SseMessage("comment", line[1:].strip())
        elif line == "":
            if data or event:
                yield SseMessage(event or "message", json.loads("\n".join(data)) if data else None, event_id)
            event, data, event_id = "", [], None
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                event = value
            elif key == "data":
                data.append(value)
            elif key == "id":
                event_id = value


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape_metrics(client: httpx.AsyncClient) -> Samples:
    """`GET /metrics` through `client` (asserted 200), parsed: value by (sample name, labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """The value of `name` with exactly `labels` (0 when absent: a counter not yet incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
