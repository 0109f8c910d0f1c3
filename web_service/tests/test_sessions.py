"""Browser sessions on the web port: `POST|DELETE /api/v1/auth/session` and
`POST /api/v1/auth/session/refresh`, with user_service served over real HTTP behind them.

The browser side runs in-process so each test chooses the socket peer (a trusted proxy, a
stranger) and the scheme the request arrived with.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from common.logging import RequestIdFilter
from tests.support import assert_error, free_port
from web_service.tests.conftest import MakeWebStack
from web_service.tests.support import PASSWORD, WEB_ORIGIN, WebStack, bearer, refresh_cookie_of

# Sessions live in Redis and user_service; the database only holds the accounts.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TRUSTED_PROXY = ("10.1.2.3", 40000)  # inside the stack's JILU_TRUSTED_PROXIES, 10.0.0.0/8
STRANGER = ("203.0.113.7", 40000)


def assert_refresh_cookie(response: httpx.Response, *, secure: bool, max_age: int) -> str:
    """The response sets the refresh cookie with every attribute; its value."""
    cookie = refresh_cookie_of(response)
    assert cookie is not None, response.headers
    assert cookie.value.count(".") == 2  # a JWT
    assert cookie.attributes == {
        "httponly": "",
        "samesite": "Strict",
        "path": "/api/v1/auth",
        "max-age": str(max_age),
        **({"secure": ""} if secure else {}),
    }
    return cookie.value


def assert_cleared(response: httpx.Response, *, secure: bool = False) -> None:
    """The response deletes the refresh cookie (same name and path, Max-Age=0)."""
    cookie = refresh_cookie_of(response)
    assert cookie is not None, response.headers
    assert (cookie.value, cookie.attributes["max-age"], cookie.attributes["path"]) == ("", "0", "/api/v1/auth")
    assert ("secure" in cookie.attributes) is secure


async def test_login_sets_the_refresh_cookie_and_answers_only_the_access_token(web_stack: WebStack) -> None:
    await web_stack.register("alice")
    browser = await web_stack.browser()
    response = await browser.login("alice")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == web_stack.settings.access_token_minutes * 60
    assert "refresh" not in response.text
    assert response.headers["cache-control"] == "no-store"
    max_age = web_stack.settings.refresh_token_days * 86400
    assert_refresh_cookie(response, secure=False, max_age=max_age)
    me = await browser.me(body["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice"


@pytest.mark.parametrize(
    ("peer", "base_url", "headers", "origin", "secure"),
    [
        pytest.param(STRANGER, "https://testserver", {}, "https://testserver", True, id="over-https"),
        pytest.param(
            TRUSTED_PROXY, WEB_ORIGIN, {"X-Forwarded-Proto": "https"}, "https://testserver", True, id="trusted-proxy"
        ),
        pytest.param(
            TRUSTED_PROXY,
            WEB_ORIGIN,
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "jilu.example"},
            "https://jilu.example",
            True,
            id="trusted-proxy-host",
        ),
        # A proxy that appends: the value it added (the last) counts, not the client's (first).
        pytest.param(
            TRUSTED_PROXY,
            WEB_ORIGIN,
            {"X-Forwarded-Proto": "http, https", "X-Forwarded-Host": "evil.example, jilu.example"},
            "https://jilu.example",
            True,
            id="trusted-proxy-appended",
        ),
        pytest.param(STRANGER, WEB_ORIGIN, {"X-Forwarded-Proto": "https"}, WEB_ORIGIN, False, id="untrusted-peer"),
        pytest.param(STRANGER, WEB_ORIGIN, {}, WEB_ORIGIN, False, id="plain-http"),
    ],
)
async def test_the_cookie_is_secure_exactly_when_the_browser_used_https(
    web_stack: WebStack, peer: tuple[str, int], base_url: str, headers: dict[str, str], origin: str, secure: bool
) -> None:
    await web_stack.register("alice")
    browser = await web_stack.browser(peer=peer, base_url=base_url, origin=origin)
    response = await browser.login("alice", headers=headers)
    assert response.status_code == 200, response.text
    max_age = web_stack.settings.refresh_token_days * 86400
    assert_refresh_cookie(response, secure=secure, max_age=max_age)
    refreshed = await browser.refresh(headers=headers)
    assert refreshed.status_code == 200, refreshed.text
    assert_refresh_cookie(refreshed, secure=secure, max_age=max_age)
    logged_out = await browser.logout(headers=headers)
    assert logged_out.status_code == 204
    assert_cleared(logged_out, secure=secure)


async def test_an_untrusted_peer_cannot_claim_another_origin_by_forwarded_headers(web_stack: WebStack) -> None:
    await web_stack.register("alice")
    browser = await web_stack.browser(peer=STRANGER, origin="https://jilu.example")
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "jilu.example"}
    assert_error(await browser.login("alice", headers=forged), 403, "forbidden_origin")
    assert await web_stack.session_count() == 0


async def test_a_client_value_before_the_trusted_proxys_own_is_not_believed(web_stack: WebStack) -> None:
    """A proxy that appends to `X-Forwarded-*` leaves what the client sent first: a page of
    that origin is refused; the origin is the proxy's own (last) value."""
    await web_stack.register("alice")
    appended = {"X-Forwarded-Proto": "http, https", "X-Forwarded-Host": "evil.example, jilu.example"}
    browser = await web_stack.browser(peer=TRUSTED_PROXY, origin="http://evil.example")
    assert_error(await browser.login("alice", headers=appended), 403, "forbidden_origin")
    assert await web_stack.session_count() == 0


async def test_refresh_rotates_the_cookie_and_a_reused_one_ends_the_session(web_stack: WebStack) -> None:
    await web_stack.register("alice")
    browser = await web_stack.browser()
    first_access = await browser.logged_in("alice")
    first_cookie = browser.cookie
    assert first_cookie

    response = await browser.refresh()
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"access_token", "token_type", "expires_in"}
    second_cookie = browser.cookie
    assert second_cookie and second_cookie != first_cookie
    assert (await browser.me(response.json()["access_token"])).status_code == 200

    # Rotated once more, the first cookie is past its grace window (it is no longer the one
    # just replaced): presented again (a stolen copy), it is refused, cleared, and
    # user_service ends the session.
    assert (await browser.refresh()).status_code == 200
    third_cookie = browser.cookie
    reused = await browser.refresh(cookie=first_cookie)
    assert_error(reused, 401, "session_ended")
    assert_cleared(reused)
    assert_error(await browser.refresh(cookie=third_cookie), 401, "session_ended")
    assert_error(await browser.me(first_access), 401, "session_ended")


async def test_a_retried_refresh_within_the_grace_window_gets_the_same_cookie(web_stack: WebStack) -> None:
    """Two tabs refreshing with one cookie, or a retry after a lost answer: both answers
    carry the same access token and set the same new cookie, and the session goes on."""
    await web_stack.register("alice")
    browser = await web_stack.browser()
    await browser.logged_in("alice")
    first_cookie = browser.cookie

    first = await browser.refresh()
    assert first.status_code == 200, first.text
    new_cookie = browser.cookie
    retried = await browser.refresh(cookie=first_cookie)

    assert retried.status_code == 200, retried.text
    assert retried.json() == first.json()
    assert browser.cookie == new_cookie != first_cookie
    assert (await browser.me(retried.json()["access_token"])).status_code == 200
    assert (await browser.refresh()).status_code == 200  # the session goes on


async def test_refresh_without_the_cookie_is_401(web_stack: WebStack) -> None:
    browser = await web_stack.browser()
    response = await browser.refresh()
    assert_error(response, 401, "unauthorized")
    garbage = await browser.refresh(cookie="not-a-token")
    assert_error(garbage, 401, "invalid_token")
    assert_cleared(garbage)


@pytest.mark.parametrize(
    "origin",
    [None, "https://evil.example", "http://testserver:8080", "https://testserver", "null", "http://testserver/path"],
)
async def test_a_missing_or_foreign_origin_is_refused_and_changes_nothing(
    web_stack: WebStack, origin: str | None
) -> None:
    await web_stack.register("alice")
    page = await web_stack.browser()
    access = await page.logged_in("alice")
    cookie = page.cookie
    sessions = await web_stack.session_count()
    intruder = await web_stack.browser(origin=origin)
    intruder.cookie = cookie  # even with the cookie (which SameSite=Strict would not send)

    responses = [
        await intruder.login("alice"),
        await intruder.request("POST", "/api/v1/auth/session", json={"username": "alice"}),  # never read
        await intruder.refresh(),
        await intruder.logout(access),
    ]
    for response in responses:
        assert_error(response, 403, "forbidden_origin")
        assert refresh_cookie_of(response) is None

    assert await web_stack.session_count() == sessions  # no login happened
    assert (await page.me(access)).status_code == 200  # not logged out
    assert page.cookie == cookie
    assert (await page.refresh()).status_code == 200  # the cookie was not rotated away


async def test_logout_ends_the_session_and_clears_the_cookie(web_stack: WebStack) -> None:
    await web_stack.register("alice")
    browser = await web_stack.browser()
    access = await browser.logged_in("alice")
    cookie = browser.cookie

    response = await browser.logout(access)
    assert response.status_code == 204, response.text
    assert_cleared(response)
    assert browser.cookie is None
    assert_error(await browser.me(access), 401, "session_ended")
    assert_error(await browser.refresh(cookie=cookie), 401, "session_ended")
    # Already gone: still 204, still cleared.
    again = await browser.logout(access, cookie=cookie)
    assert again.status_code == 204
    assert_cleared(again)


async def test_logout_with_the_cookie_only_ends_that_session(web_stack: WebStack) -> None:
    """A page that lost its access token (a reload) logs out with the cookie alone."""
    await web_stack.register("alice")
    browser = await web_stack.browser()
    access = await browser.logged_in("alice")
    response = await browser.logout()
    assert response.status_code == 204, response.text
    assert_cleared(response)
    assert_error(await browser.me(access), 401, "session_ended")
    assert await web_stack.session_count() == 0


async def test_logout_ends_the_cookies_session_when_the_bearer_is_of_another(web_stack: WebStack) -> None:
    await web_stack.register("alice")
    browser = await web_stack.browser()
    old_access = await browser.logged_in("alice")
    new_access = await browser.logged_in("alice")  # a login in another tab: a new cookie
    response = await browser.logout(old_access)
    assert response.status_code == 204
    assert_error(await browser.me(old_access), 401, "session_ended")
    assert_error(await browser.me(new_access), 401, "session_ended")


async def test_user_service_refusals_are_passed_through(web_stack: WebStack) -> None:
    admin = await web_stack.register("root")
    alice = await web_stack.register("alice")
    browser = await web_stack.browser()

    wrong = await browser.login("alice", "not-the-password")
    assert assert_error(wrong, 401, "invalid_credentials") == "incorrect username or password"
    assert wrong.headers["www-authenticate"] == 'Bearer realm="jilu"'
    assert refresh_cookie_of(wrong) is None
    assert_error(await browser.login("nobody"), 401, "invalid_credentials")

    admin_token = await web_stack.token("root")
    deactivate = await web_stack.users.patch(
        f"/api/v1/admin/users/{alice}", json={"is_active": False}, headers=bearer(admin_token)
    )
    assert deactivate.status_code == 200, (admin, deactivate.text)
    deactivated = await browser.login("alice")
    assert assert_error(deactivated, 403, "forbidden") == "this account is deactivated"
    assert refresh_cookie_of(deactivated) is None


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice"},
        {"password": PASSWORD},
        {"username": "", "password": PASSWORD},
        {"username": "alice", "password": ""},
        {"username": "alice", "password": PASSWORD, "remember": True},
        {"username": "alice", "password": "x" * 1025},  # past any password: as on /api/v1/auth/token
    ],
)
async def test_a_bad_login_body_is_422(web_stack: WebStack, body: dict[str, object]) -> None:
    await web_stack.register("alice")
    browser = await web_stack.browser()
    response = await browser.request("POST", "/api/v1/auth/session", json=body)
    assert_error(response, 422, "validation_error")
    assert refresh_cookie_of(response) is None
    assert await web_stack.session_count() == 0


async def test_login_rate_limits_are_per_browser_address_and_passed_through(make_web_stack: MakeWebStack) -> None:
    """user_service counts logins per client address: it must see each browser's own
    address (signed by web_service), not web_service's; its 429 comes back with Retry-After."""
    stack = await make_web_stack(user={"rate_login_address": "2/minute", "rate_login_user": "100/minute"})
    await stack.register("alice")
    first = await stack.browser(peer=("198.51.100.1", 1000))
    second = await stack.browser(peer=("198.51.100.2", 1000))
    for _ in range(2):
        assert (await first.login("alice", "wrong-password")).status_code == 401
    limited = await first.login("alice")
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert refresh_cookie_of(limited) is None
    assert (await second.login("alice")).status_code == 200  # another address, its own count


async def test_the_request_id_travels_to_user_service(web_stack: WebStack, caplog: pytest.LogCaptureFixture) -> None:
    await web_stack.register("alice")
    browser = await web_stack.browser()
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="jilu.access"):
        response = await browser.login("alice", headers={"X-Request-ID": "web-login-7"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "web-login-7"
    seen = [r for r in caplog.records if getattr(r, "path", "") == "/api/v1/auth/token"]
    assert [getattr(r, "request_id", None) for r in seen] == ["web-login-7"]


async def test_user_service_not_running_is_503_and_logout_still_clears_the_cookie(make_web_stack: MakeWebStack) -> None:
    stack = await make_web_stack(web={"user_url": f"http://127.0.0.1:{free_port()}"})
    browser = await stack.browser()
    assert_error(await browser.login("alice"), 503, "service_unavailable")
    browser.cookie = "a.b.c"
    assert_error(await browser.refresh(), 503, "service_unavailable")
    logout = await browser.logout()
    assert_error(logout, 503, "service_unavailable")
    assert_cleared(logout)


async def test_the_token_endpoints_keep_their_json_pair(web_stack: WebStack) -> None:
    """The relayed `/api/v1/auth/token` (mobile apps, scripts) is unchanged: no cookie."""
    await web_stack.register("alice")
    browser = await web_stack.browser(origin=None)
    response = await browser.request("POST", "/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert {"access_token", "refresh_token"} <= set(response.json())
    assert refresh_cookie_of(response) is None
    assert (await browser.me(response.json()["access_token"])).status_code == 200
