"""X-Request-ID: accepted when sane, generated otherwise, echoed, and carried to other services."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI

from common.app import create_service_app
from common.deps import ServicesDep
from common.forwarded import forwarding_router
from common.logging import request_id_var
from tests.common.conftest import Probe
from tests.support import app_client
from web_service.app.config import WebSettings

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def app(build_app: Callable[..., FastAPI]) -> FastAPI:
    app = build_app("user")

    @app.get("/test/request-id")
    async def current_request_id() -> dict[str, str | None]:
        return {"request_id": request_id_var.get()}

    return app


@pytest.mark.parametrize("request_id", ["abc", "trace.1:2_3-4", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "x" * 128])
async def test_a_sane_request_id_is_echoed(app: FastAPI, request_id: str) -> None:
    async with app_client(app) as client:
        response = await client.get("/test/request-id", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    assert response.json() == {"request_id": request_id}  # what logs and outgoing calls see


@pytest.mark.parametrize("request_id", [None, "", "has space", "line\nbreak", "semi;colon", "x" * 129])
async def test_a_missing_or_malformed_request_id_is_replaced(app: FastAPI, request_id: str | None) -> None:
    headers = {} if request_id is None else {"X-Request-ID": request_id}
    async with app_client(app) as client:
        response = await client.get("/test/request-id", headers=headers)
        other = await client.get("/test/request-id", headers=headers)
    generated = response.headers["x-request-id"]
    assert GENERATED.fullmatch(generated)
    assert response.json() == {"request_id": generated}
    assert other.headers["x-request-id"] != generated  # one per request


def upstream_app(make_settings: Callable[..., Any], probe: Probe) -> FastAPI:
    """An upstream service that reaches the probe both by forwarding and with `ServiceClient.get`."""
    router = APIRouter()

    @router.get("/test/via-client")
    async def via_client(services: ServicesDep) -> Any:
        return (await services["user"].get("/probe/echo")).json()

    settings = make_settings(WebSettings, user_url=probe.url)
    return create_service_app("web_service", settings, routers=[forwarding_router(["/probe"], "user", tag="t"), router])


@pytest.mark.parametrize("path", ["/probe/echo", "/test/via-client"])
@pytest.mark.parametrize("sent", ["trace-from-the-phone", None, "not a valid id"])
async def test_the_request_id_travels_to_the_service_called(
    make_settings: Callable[..., Any], downstream: Probe, path: str, sent: str | None
) -> None:
    headers = {} if sent is None else {"X-Request-ID": sent}
    async with app_client(upstream_app(make_settings, downstream)) as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    if sent == "trace-from-the-phone":
        assert request_id == sent
    else:
        assert GENERATED.fullmatch(request_id)
    assert response.json()["request_id"] == request_id  # the downstream saw the same id
