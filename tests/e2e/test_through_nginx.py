"""Through nginx, as deployed: the compose deployment's nginx configuration (rendered from its
one template, deploy/nginx/nginx.conf.template, with its own limits script) run by Debian's
nginx in front of every service started by the real launcher. The browser's port reaches
web_service, the app's port mobile_service; chat streams arrive event by event; the upload
limits follow JILU_MAX_UPLOAD_MB; /metrics is never passed on.

Only the upstream addresses, the ports nginx listens on and the DNS server differ from what
compose renders (services on loopback instead of Docker's DNS names). Skipped when nginx is
not installed (Debian: `apt-get install nginx`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from llm_service.tests.fake_provider import FakeProvider, Reply, run_fake_provider
from tests.deployment import find_nginx, nginx_command, nginx_environment, render_nginx
from tests.e2e.stack import e2e_stack
from tests.harness import Launcher, Spawned, clean_env, free_ports

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed (Debian: apt-get install nginx)"),
]

PASSWORD = "plum-Lantern-42"
MIB = 1024 * 1024
UPLOAD_CAP_MB = 1  # JILU_MAX_UPLOAD_MB for this stack and its nginx: small bodies, same rules
# The streamed answer: its first piece at once, the others only once the test lets them go
# (long past JILU_HTTP_TIMEOUT, so a proxy holding the first piece back ends in an `error`).
ANSWER = ["Through ", "nginx, ", "piece by piece."]
HELD_BACK_SECONDS = 90.0


@dataclass
class Deployment:
    jilu: Launcher
    nginx: Spawned
    fake: FakeProvider
    web: str  # nginx's browser port
    mobile: str  # nginx's app port


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp("through-nginx")
    with run_fake_provider() as fake:
        with e2e_stack(
            base,
            JILU_MAX_UPLOAD_MB=str(UPLOAD_CAP_MB),
            **fake.launch_settings(),
        ) as jilu:
            web_port, mobile_port = free_ports(2)
            env = nginx_environment(
                {
                    "JILU_MAX_UPLOAD_MB": str(UPLOAD_CAP_MB),
                    "NGINX_JILU_WEB_LISTEN": f"127.0.0.1:{web_port}",
                    "NGINX_JILU_MOBILE_LISTEN": f"127.0.0.1:{mobile_port}",
                    "NGINX_JILU_WEB_UPSTREAM": f"127.0.0.1:{jilu.ports['web']}",
                    "NGINX_JILU_MOBILE_UPSTREAM": f"127.0.0.1:{jilu.ports['mobile']}",
                    "NGINX_JILU_RESOLVER": "127.0.0.1",
                }
            )
            prefix = base / "nginx"
            prefix.mkdir()
            conf = prefix / "nginx.conf"
            conf.write_text(render_nginx(env), encoding="utf-8")
            with Spawned("nginx", nginx_command(conf, prefix), clean_env()) as nginx:
                web, mobile = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{mobile_port}"
                nginx.wait_until_answers(web, timeout=60)
                nginx.wait_until_answers(mobile, timeout=60)
                yield Deployment(jilu, nginx, fake, web, mobile)


@pytest.fixture(scope="module")
def app_user(deployment: Deployment) -> Iterator[httpx.Client]:
    """A client of nginx's app port, logged in as a new user."""
    with httpx.Client(base_url=deployment.mobile, timeout=60) as client:
        username = f"nginx_{uuid.uuid4().hex[:10]}"
        registered = client.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        token = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        assert token.status_code == 200, token.text
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client


def new_record(client: httpx.Client) -> str:
    created = client.post("/api/v1/records", json={"content": "Notes behind the proxy.", "ai_opt_out": True})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def from_nginx(response: httpx.Response) -> bool:
    """nginx's own answer (an HTML page), not a service's (JSON with an `error` code)."""
    return response.headers.get("content-type", "").startswith("text/html") and b"nginx" in response.content


def assert_service_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body: dict[str, Any] = response.json()
    assert "error" in body
    return body


def sse_events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) of each Server-Sent Event as it arrives; comments (`: ping`) skipped."""
    event, data = "message", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())


# -- routing ---------------------------------------------------------------------------------


def test_the_browser_port_serves_the_web_app(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.web, timeout=30) as browser:
        page = browser.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert b"<html" in page.content.lower()
        ready = browser.get("/health/ready", headers={"X-Request-ID": "through-nginx-1"})
        assert ready.status_code == 200, ready.text
        # The client's request id travels through nginx to the service and back.
        assert ready.headers["x-request-id"] == "through-nginx-1"
        # One that nginx makes itself when the client sends none reaches the service too.
        assert len(browser.get("/health").headers["x-request-id"]) == 32


def test_the_app_port_serves_the_api(deployment: Deployment, app_user: httpx.Client) -> None:
    record_id = new_record(app_user)
    listed = app_user.get("/api/v1/records")
    assert listed.status_code == 200, listed.text
    assert record_id in [record["id"] for record in listed.json()["items"]]
    # The services' own errors pass through unchanged.
    assert_service_error(app_user.get("/api/v1/records/does-not-exist"), 404)
    assert_service_error(httpx.get(f"{deployment.mobile}/api/v1/records", timeout=30), 401)


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/metrics?format=json", "//metrics", "/%6Detrics"])
@pytest.mark.parametrize("port", ["web", "mobile"])
def test_metrics_are_never_passed_on(deployment: Deployment, port: str, path: str) -> None:
    base = deployment.web if port == "web" else deployment.mobile
    with httpx.Client(timeout=30) as client:
        response = client.get(f"{base}{path}")
        assert response.status_code == 404
        assert from_nginx(response), f"{path} reached the service: {response.text[:200]}"
        # A path the service does not know is the service's own 404, for contrast.
        assert not from_nginx(client.get(f"{base}/api/v1/no-such-thing"))


# -- streaming -------------------------------------------------------------------------------


def test_a_chat_answer_streams_through_event_by_event(deployment: Deployment, app_user: httpx.Client) -> None:
    """The first piece of the answer reaches the client while the provider still holds the
    rest back; the test then lets the rest go, and the stream ends with the whole answer. A
    buffering proxy would deliver nothing until the provider timed out, then an `error`."""
    fake = deployment.fake
    fake.script(Reply(chunks=ANSWER, chunk_delay=HELD_BACK_SECONDS))
    conversation = app_user.post("/api/v1/chat/conversations", json={})
    assert conversation.status_code == 201, conversation.text
    url = f"/api/v1/chat/conversations/{conversation.json()['id']}/messages"
    events: list[tuple[str, str]] = []
    with app_user.stream("POST", url, json={"content": "What do my notes say?", "stream": True}) as response:
        assert response.status_code == 201
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = sse_events(response)
        for event, data in stream:
            events.append((event, data))
            if event != "delta":
                break
            # The first piece is here; the provider is still holding the others back.
            assert fake.streams_completed == 0 and fake.streams_cancelled == 0
            fake.stop.set()  # let the rest go
            break
        events.extend(stream)
    names = [event for event, _ in events]
    assert names[0] == "delta", events
    assert names[-1] == "done", events
    assert json.loads(events[0][1])["text"] == ANSWER[0]
    assert json.loads(events[-1][1])["content"] == "".join(ANSWER)


# -- upload limits ---------------------------------------------------------------------------


def upload(client: httpx.Client, record_id: str, size: int) -> httpx.Response:
    files = {"file": ("notes.txt", b"a" * size, "text/plain")}
    return client.post(f"/api/v1/records/{record_id}/attachments", files=files)


def test_an_upload_at_the_cap_passes_nginx_and_one_past_it_is_refused(app_user: httpx.Client) -> None:
    record_id = new_record(app_user)
    stored = upload(app_user, record_id, UPLOAD_CAP_MB * MIB)
    assert stored.status_code == 201, stored.text
    assert stored.json()["size"] == UPLOAD_CAP_MB * MIB
    # One byte more: nginx lets the body through (room for the multipart framing) and the
    # service refuses it with its own 413, naming the cap.
    refused = assert_service_error(upload(app_user, record_id, UPLOAD_CAP_MB * MIB + 1), 413)
    assert f"{UPLOAD_CAP_MB} MB" in refused["detail"]
    # Clearly too large: nginx refuses it before it is received whole.
    blocked = upload(app_user, record_id, (UPLOAD_CAP_MB + 1) * MIB + 1)
    assert blocked.status_code == 413
    assert from_nginx(blocked)


def test_an_import_has_room_for_ten_times_the_cap(app_user: httpx.Client) -> None:
    """`POST /api/v1/import` takes a zip up to 10 × JILU_MAX_UPLOAD_MB: nginx passes one larger
    than an attachment may be (the service reads it and finds no archive), and refuses one
    past its own allowance."""
    files = {"file": ("export.zip", b"z" * (3 * UPLOAD_CAP_MB * MIB), "application/zip")}
    passed = app_user.post("/api/v1/import", files=files)
    assert not from_nginx(passed), passed.text[:200]
    assert 400 <= passed.status_code < 500 and passed.status_code != 413, passed.text
    assert "error" in passed.json()
    files = {"file": ("export.zip", b"z" * ((10 * UPLOAD_CAP_MB + 1) * MIB + 1), "application/zip")}
    blocked = app_user.post("/api/v1/import", files=files)
    assert blocked.status_code == 413
    assert from_nginx(blocked)


def test_nginx_logged_each_request_with_its_request_id(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.web, timeout=30) as browser:
        assert browser.get("/health", headers={"X-Request-ID": "logged-by-nginx-7"}).status_code == 200
    line = deployment.nginx.wait_for_line("rid=logged-by-nginx-7", timeout=30)
    assert '"GET /health HTTP/1.1" 200' in line
    assert f"upstream=127.0.0.1:{deployment.jilu.ports['web']}" in line
