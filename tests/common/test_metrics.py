"""`GET /metrics` (common/metrics.py): requests counted and timed by route template, the
database pools, and who may read it (`JILU_METRICS_ALLOW`, proxies believed only when
trusted). Real apps, a real database and Redis, in-process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from common.metrics import UNMATCHED_ROUTE
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.support import Samples, app_client, free_port, sample, scrape_metrics
from user_service.app.config import UserSettings
from user_service.app.main import create_app as create_user_app
from web_service.app.config import WebSettings
from web_service.app.main import create_app as create_web_app

PASSWORD = "plum-Lantern-42"
SECRET = "m" * 40
RECORD_ROUTE = "/api/v1/records/{record_id}"


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return sample(after, name, **labels) - sample(before, name, **labels)


async def test_requests_are_counted_and_timed_by_route_template(
    make_settings: Callable[..., Any], migrated_database_url: str
) -> None:
    common = {"database_url": migrated_database_url, "secret_key": SECRET}
    async with (
        app_client(create_user_app(make_settings(UserSettings, **common))) as users,
        app_client(create_mobile_app(make_settings(MobileSettings, **common))) as mobile,
    ):
        username = f"metrics_{uuid.uuid4().hex[:8]}"
        registered = await users.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        token = await users.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}

        before = await scrape_metrics(mobile)
        created = await mobile.post("/api/v1/records", headers=auth, json={"content": "counted, not named"})
        assert created.status_code == 201, created.text
        record_id = created.json()["id"]
        for _ in range(2):
            assert (await mobile.get(f"/api/v1/records/{record_id}", headers=auth)).status_code == 200
        missing_id = created.json()["id"][:-4] + "0000"
        assert (await mobile.get(f"/api/v1/records/{missing_id}", headers=auth)).status_code == 404
        assert (await mobile.get(f"/no/such/place/{record_id}")).status_code == 404
        assert (await mobile.request("BREW", "/api/v1/records")).status_code in (400, 405)
        after = await scrape_metrics(mobile)
        text = (await mobile.get("/metrics")).text

    labels = {"service": "mobile_service"}
    requests = "jilu_http_requests_total"
    assert delta(before, after, requests, **labels, method="POST", route="/api/v1/records", status="201") == 1
    assert delta(before, after, requests, **labels, method="GET", route=RECORD_ROUTE, status="200") == 2
    assert delta(before, after, requests, **labels, method="GET", route=RECORD_ROUTE, status="404") == 1
    assert delta(before, after, requests, **labels, method="GET", route=UNMATCHED_ROUTE, status="404") == 1
    other = [key for key in after if key[0] == requests and ("method", "OTHER") in key[1]]
    assert other, "a made-up method is counted as OTHER, not by its name"
    duration = "jilu_http_request_duration_seconds"
    assert delta(before, after, f"{duration}_count", **labels, method="GET", route=RECORD_ROUTE) == 3
    assert delta(before, after, f"{duration}_sum", **labels, method="GET", route=RECORD_ROUTE) > 0
    # No raw path, id or made-up method becomes a label (each would be a new series).
    assert record_id not in text and missing_id not in text and "BREW" not in text
    assert "/no/such/place" not in text
    # The database pool the reads use, read at the scrape; the process's own metrics too.
    assert (("jilu_db_pool_connections", frozenset({**labels, "engine": "read", "state": "size"}.items()))) in after
    assert sample(after, "jilu_db_pool_connections", **labels, engine="read", state="checked_out") >= 0
    if migrated_database_url.startswith("sqlite"):  # SQLite's one write connection
        assert sample(after, "jilu_db_pool_connections", **labels, engine="write", state="size") == 1
    assert any(name == "process_resident_memory_bytes" for name, _ in after)


async def test_relays_and_the_web_pages_are_labelled_by_their_templates(make_settings: Callable[..., Any]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(WebSettings, secret_key=SECRET, llm_url=dead, user_url=dead)
    async with app_client(create_web_app(settings)) as web:
        before = await scrape_metrics(web)
        assert (await web.get("/")).status_code == 200  # the web app's page (Flask)
        assert (await web.get("/static/not-a-file-7q.js")).status_code == 404
        relayed = await web.get(f"/api/v1/chat/conversations/{uuid.uuid4().hex}")
        assert relayed.status_code == 503  # llm_service is not there
        after = await scrape_metrics(web)
        text = (await web.get("/metrics")).text

    labels = {"service": "web_service", "method": "GET"}
    requests = "jilu_http_requests_total"
    assert delta(before, after, requests, **labels, route="/{path}", status="200") == 1
    assert delta(before, after, requests, **labels, route="/{path}", status="404") == 1
    assert delta(before, after, requests, **labels, route="/api/v1/chat/{rest}", status="503") == 1
    assert "not-a-file-7q" not in text and "/api/v1/chat/conversations" not in text


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        yield app


async def get_from(app: FastAPI, peer: str, path: str = "/metrics", **headers: str) -> httpx.Response:
    """`GET path` as a client connecting from `peer` would."""
    transport = httpx.ASGITransport(app=app, client=(peer, 40123))
    async with httpx.AsyncClient(transport=transport, base_url="http://jilu.test") as client:
        return await client.get(path, headers=headers)


PUBLIC = "203.0.113.9"  # TEST-NET-3: a public address
PROXY = "10.0.0.2"

# (settings, socket peer, headers, answered?)
EXPOSURE = {
    "loopback, by default outside production": ({}, "127.0.0.1", {}, True),
    "a private network, by default outside production": ({}, "10.1.2.3", {}, True),
    "a public client": ({}, PUBLIC, {}, False),
    "a public client claiming loopback": ({}, PUBLIC, {"X-Forwarded-For": "127.0.0.1"}, False),
    "a public client through an untrusted same-host proxy": ({}, "127.0.0.1", {"X-Forwarded-For": PUBLIC}, False),
    "the same, through Forwarded": ({}, "127.0.0.1", {"Forwarded": f"for={PUBLIC}"}, False),
    "the same, through X-Real-IP": ({}, "127.0.0.1", {"X-Real-IP": PUBLIC}, False),
    "a public client through a trusted proxy": (
        {"trusted_proxies": [PROXY]},
        PROXY,
        {"X-Forwarded-For": PUBLIC},
        False,
    ),
    "a spoofed private hop through a trusted proxy": (
        {"trusted_proxies": [PROXY]},
        PROXY,
        {"X-Forwarded-For": f"10.9.9.9, {PUBLIC}"},
        False,
    ),
    "a private client through a trusted proxy": (
        {"trusted_proxies": [PROXY]},
        PROXY,
        {"X-Forwarded-For": "10.9.9.9"},
        True,
    ),
    "nobody when the list is empty": ({"metrics_allow": []}, "127.0.0.1", {}, False),
    "nobody by default in production": ({"env": "production"}, "127.0.0.1", {}, False),
    "a listed scraper in production": (
        {"env": "production", "metrics_allow": ["192.0.2.0/24"]},
        "192.0.2.10",
        {},
        True,
    ),
    "an unlisted one in production": ({"env": "production", "metrics_allow": ["192.0.2.0/24"]}, "127.0.0.1", {}, False),
}


@pytest.mark.parametrize(("settings", "peer", "headers", "answered"), EXPOSURE.values(), ids=EXPOSURE.keys())
async def test_metrics_answer_only_the_allowed_addresses(
    make_settings: Callable[..., Any], settings: dict[str, Any], peer: str, headers: dict[str, str], answered: bool
) -> None:
    app = create_user_app(make_settings(UserSettings, secret_key=SECRET, **settings))
    async with running(app):
        response = await get_from(app, peer, **headers)
        unknown = await get_from(app, peer, "/no-such-path", **headers)

    if answered:
        assert response.status_code == 200, response.text
        assert "jilu_http_requests_total" in response.text
    else:
        # Refused exactly as a path that does not exist is: nothing tells it is there.
        assert (response.status_code, response.json()) == (unknown.status_code, unknown.json()) == (404, unknown.json())


async def test_metrics_are_not_in_the_openapi(make_settings: Callable[..., Any]) -> None:
    app = create_user_app(make_settings(UserSettings, secret_key=SECRET))
    async with running(app):
        paths = (await get_from(app, "127.0.0.1", "/openapi.json")).json()["paths"]
    assert "/metrics" not in paths and paths  # the others are there
