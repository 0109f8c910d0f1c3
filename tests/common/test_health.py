"""`/health` and `/health/ready` on every service, with real Redis, databases and dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI

import common
from tests.common.conftest import SERVICES
from tests.support import app_client, free_port, serve_app

# web and mobile call user and llm; those two call nobody.
DEPENDENCIES = {"web": ("user", "llm"), "mobile": ("user", "llm"), "user": (), "llm": ()}


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
async def dependency_urls(build_app: Callable[..., FastAPI]) -> AsyncIterator[dict[str, str]]:
    """Real user_service and llm_service servers; `{"user_url": ..., "llm_url": ...}`."""
    async with AsyncExitStack() as stack:
        urls = {}
        for name in ("user", "llm"):
            urls[f"{name}_url"] = await stack.enter_async_context(serve_app(build_app(name)))
        yield urls


async def get(app: FastAPI, path: str) -> httpx.Response:
    async with app_client(app) as client:
        return await client.get(path)


@pytest.mark.parametrize("name", list(SERVICES))
async def test_liveness(build_app: Callable[..., FastAPI], name: str) -> None:
    response = await get(build_app(name), "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": f"{name}_service", "version": common.__version__}


@pytest.mark.parametrize("name", list(SERVICES))
async def test_ready_when_everything_answers(
    build_app: Callable[..., FastAPI], database_url: str, dependency_urls: dict[str, str], name: str
) -> None:
    response = await get(build_app(name, database_url=database_url, **dependency_urls), "/health/ready")
    assert response.status_code == 200, response.text
    expected = {"database": "ok", "redis": "ok"} | {f"{dep}_service": "ok" for dep in DEPENDENCIES[name]}
    assert response.json() == {"status": "ready", "service": f"{name}_service", "checks": expected}


def assert_not_ready(response: httpx.Response, failed: set[str]) -> dict[str, str]:
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == {"error", "detail", "checks"} and body["error"] == "not_ready"
    assert {check for check, result in body["checks"].items() if result != "ok"} == failed
    assert all(body["checks"][check].startswith("failed") for check in failed)
    assert all(check in body["detail"] for check in failed)
    return body["checks"]


@pytest.mark.parametrize("name", list(SERVICES))
async def test_not_ready_when_redis_is_down(
    build_app: Callable[..., FastAPI], dependency_urls: dict[str, str], name: str
) -> None:
    app = build_app(name, redis_url=f"redis://127.0.0.1:{free_port()}/0", **dependency_urls)
    assert_not_ready(await get(app, "/health/ready"), {"redis"})


async def test_not_ready_when_the_database_is_down(build_app: Callable[..., FastAPI]) -> None:
    app = build_app("user", database_url=f"postgresql+asyncpg://jilu@127.0.0.1:{free_port()}/jilu")
    assert_not_ready(await get(app, "/health/ready"), {"database"})


@pytest.mark.parametrize("name", ["web", "mobile"])
@pytest.mark.parametrize("down", ["user", "llm"])
async def test_not_ready_when_a_service_it_calls_is_down(
    build_app: Callable[..., FastAPI], dependency_urls: dict[str, str], name: str, down: str
) -> None:
    app = build_app(name, **{**dependency_urls, f"{down}_url": dead_url()})
    checks = assert_not_ready(await get(app, "/health/ready"), {f"{down}_service"})
    assert checks["database"] == checks["redis"] == "ok"
