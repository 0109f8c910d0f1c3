"""`/metrics` on the launched services (the e2e stack, development settings): every service
answers a scrape from loopback; nobody reaches it through a public port's relay, with a
made-up X-Forwarded-For, or with a path that climbs out of a relayed prefix."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import httpx
import pytest

from common.config import SERVICE_NAMES
from tests.harness import Launcher

pytestmark = pytest.mark.e2e


def raw_get(base_url: str, path: str, **headers: str) -> tuple[int, str]:
    """`GET path` sent exactly as written (no client normalises the dots away)."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_service_answers_a_scrape_from_loopback(jilu: Launcher, service: str) -> None:
    response = httpx.get(f"{jilu.url(service)}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert f'service="{service}_service"' in response.text
    assert "jilu_db_pool_connections" in response.text
    if service == "llm":
        assert 'jilu_queue_jobs{queue="analysis",state="waiting"}' in response.text


@pytest.mark.parametrize("port", ["web", "mobile"])
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/metrics", {"X-Forwarded-For": "203.0.113.9"}),  # as a same-host proxy would relay it
        ("/api/v1/chat/../../../metrics", {}),  # the relay to llm_service, climbing out
        ("/api/v1/auth/../../../metrics", {}),  # the relay to user_service
    ],
)
def test_no_public_way_reaches_metrics(jilu: Launcher, port: str, path: str, headers: dict[str, str]) -> None:
    status, body = raw_get(jilu.url(port), path, **headers)
    assert status == 404, body
    assert "jilu_http_requests" not in body
