"""Where the web app keeps its tokens: the access token in memory only, the refresh token in an
HttpOnly, SameSite=Strict cookie on /api/v1/auth that a page of another origin cannot use."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import BrowserContext, Response

from tests.web.conftest import PASSWORD, Guard, Stack
from tests.web.flows import expect_timeline, log_in, log_in_ui

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

REFRESH = "/api/v1/auth/session/refresh"


def test_no_token_in_storage_and_the_cookie_is_locked(
    stack: Stack, new_context: Callable[..., BrowserContext], guard: Guard
) -> None:
    user = stack.register()
    context = new_context()
    page = context.new_page()
    tokens: list[str] = []

    def keep_token(response: Response) -> None:
        path = response.url.split("?", 1)[0]
        if response.request.method == "POST" and path.endswith(("/api/v1/auth/session", REFRESH)) and response.ok:
            tokens.append(response.json()["access_token"])

    page.on("response", keep_token)
    log_in_ui(page, user.username, PASSWORD)
    expect_timeline(page)
    # A reload signs in again through the cookie: a second access token to look for.
    page.reload()
    expect_timeline(page)
    assert tokens, "no access token came back from /api/v1/auth/session or its refresh"

    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert "jilu_refresh" in cookies, cookies
    refresh_cookie = cookies["jilu_refresh"]
    assert refresh_cookie["httpOnly"] is True
    assert refresh_cookie["sameSite"] == "Strict"
    assert refresh_cookie["path"] == "/api/v1/auth"
    secrets = [*tokens, refresh_cookie["value"]]

    stored = page.evaluate(
        """() => {
            const dump = (storage) => {
                const out = {};
                for (let i = 0; i < storage.length; i += 1) out[storage.key(i)] = storage.getItem(storage.key(i));
                return out;
            };
            return { local: dump(localStorage), session: dump(sessionStorage), cookie: document.cookie };
        }"""
    )
    text = repr(stored)
    assert "jilu_refresh" not in stored["cookie"], stored["cookie"]
    for secret in secrets:
        assert secret not in text, f"a token is readable by scripts: {stored}"
    # Nor in IndexedDB (the offline outbox lives there) or Cache Storage.
    persisted = page.evaluate(
        """async () => {
            const found = [];
            if (indexedDB.databases) {
                for (const info of await indexedDB.databases()) {
                    const db = await new Promise((ok, fail) => {
                        const open = indexedDB.open(info.name);
                        open.onsuccess = () => ok(open.result);
                        open.onerror = () => fail(open.error);
                    });
                    for (const name of db.objectStoreNames) {
                        const all = await new Promise((ok, fail) => {
                            const get = db.transaction(name).objectStore(name).getAll();
                            get.onsuccess = () => ok(get.result);
                            get.onerror = () => fail(get.error);
                        });
                        found.push(JSON.stringify(all));
                    }
                    db.close();
                }
            }
            for (const name of await caches.keys()) {
                const cache = await caches.open(name);
                for (const request of await cache.keys()) found.push(request.url);
            }
            return found.join('\\n');
        }"""
    )
    for secret in secrets:
        assert secret not in persisted, "a token was written to IndexedDB or Cache Storage"


def test_refresh_from_another_origin_is_refused(stack: Stack) -> None:
    user = stack.register()
    with httpx.Client(base_url=stack.web, timeout=30) as client:
        login = client.post(
            "/api/v1/auth/session",
            json={"username": user.username, "password": PASSWORD},
            headers={"Origin": stack.web},
        )
        assert login.status_code == 200, login.text
        set_cookie = login.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/api/v1/auth" in set_cookie
        assert "refresh_token" not in login.json()
        cookie = {"Cookie": f"jilu_refresh={client.cookies['jilu_refresh']}"}
        client.cookies.clear()

        for origin in ("https://evil.example", "http://127.0.0.1:1", stack.web.replace("127.0.0.1", "localhost")):
            refused = client.post(REFRESH, headers={**cookie, "Origin": origin})
            assert refused.status_code == 403, (origin, refused.text)
            assert refused.json()["error"] == "forbidden_origin"
            assert "set-cookie" not in refused.headers
        missing = client.post(REFRESH, headers=cookie)
        assert missing.status_code == 403, missing.text

        # The same cookie from the app's own origin still works (it was not spent above).
        allowed = client.post(REFRESH, headers={**cookie, "Origin": stack.web})
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["access_token"]


def test_a_page_of_another_origin_cannot_refresh(
    stack: Stack, new_context: Callable[..., BrowserContext], guard: Guard
) -> None:
    """A page of another origin in the browser that holds the cookie posts to the refresh
    route. The mobile port is such an origin, and the same site (ports do not count), so
    SameSite=Strict does not stop the cookie here: the Origin check must, before the cookie
    is read (the session stays usable)."""
    user = stack.register()
    context = new_context()
    app = log_in(context, user.username, PASSWORD)
    page = context.new_page()
    guard.allow(r"response 403: POST \S+/api/v1/auth/session/refresh")  # the refusal this test provokes
    guard.allow(r"console error: .*(403|CORS|Access-Control).*")
    guard.allow(rf"{stack.mobile}/favicon\.ico")  # Chromium asks the JSON page's origin for an icon
    page.goto(f"{stack.mobile}/health")
    with page.expect_response(lambda response: REFRESH in response.url) as answer:
        page.evaluate(
            "(url) => fetch(url, { method: 'POST', credentials: 'include', mode: 'no-cors' }).catch(() => null)",
            f"{stack.web}{REFRESH}",
        )
    assert answer.value.status == 403
    # The session in the cookie is intact: the app itself still signs in with it.
    app.reload()
    expect_timeline(app)
