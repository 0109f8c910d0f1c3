"""Fixtures for the `common/` tests: every service's app, and a real downstream service."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from common.app import create_service_app
from llm_service.app.config import LlmSettings
from llm_service.app.main import create_app as create_llm_app
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.support import serve_app
from user_service.app.config import UserSettings
from user_service.app.main import create_app as create_user_app
from web_service.app.config import WebSettings
from web_service.app.main import create_app as create_web_app

SERVICES: dict[str, tuple[Callable[[Any], FastAPI], type]] = {
    "web": (create_web_app, WebSettings),
    "user": (create_user_app, UserSettings),
    "mobile": (create_mobile_app, MobileSettings),
    "llm": (create_llm_app, LlmSettings),
}


@pytest.fixture
def build_app(make_settings: Callable[..., Any]) -> Callable[..., FastAPI]:
    """`build_app("web", **setting_overrides)`: that service's real app on test settings."""

    def build(name: str, **overrides: Any) -> FastAPI:
        create_app, settings_cls = SERVICES[name]
        return create_app(make_settings(settings_cls, **overrides))

    return build


class Probe:
    """A downstream test service: reports what it received; its slow routes wait for `release`."""

    def __init__(self) -> None:
        self.url = ""
        self.release = threading.Event()
        self.finished = threading.Event()

    async def released(self) -> None:
        while not self.release.is_set():
            await asyncio.sleep(0.01)

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/probe")

        @router.api_route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def echo(request: Request) -> dict[str, Any]:
            body = await request.body()
            return {
                "method": request.method,
                "path": request.url.path,
                "request_id": request.headers.get("x-request-id"),
                "query": request.query_params.multi_items(),
                "content_type": request.headers.get("content-type"),
                "authorization": request.headers.get("authorization"),
                "cookie": request.headers.get("cookie"),
                "body_size": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            }

        @router.get("/status/{code}")
        async def status(code: int) -> JSONResponse:
            return JSONResponse({"status": code}, status_code=code, headers={"Retry-After": "7", "X-Probe": "yes"})

        @router.get("/stream")
        async def stream() -> StreamingResponse:
            async def chunks() -> AsyncIterator[bytes]:
                yield b"first\n"
                await self.released()
                yield b"second\n"
                self.finished.set()

            return StreamingResponse(chunks(), media_type="text/plain")

        @router.get("/slow")
        async def slow() -> dict[str, bool]:
            await self.released()
            return {"late": True}

        return router


@pytest.fixture
async def downstream(make_settings: Callable[..., Any]) -> AsyncIterator[Probe]:
    """A real `user_service`-like server (the shared app factory plus the probe routes) over HTTP."""
    probe = Probe()
    app = create_service_app("user_service", make_settings(UserSettings), routers=[probe.router()])
    async with serve_app(app) as url:
        probe.url = url
        try:
            yield probe
        finally:
            probe.release.set()  # let a waiting handler finish, so the server stops at once
