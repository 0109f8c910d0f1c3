"""Logging out while the page still makes requests (a record reloaded on a live event, the
event stream ended by the logout asking for a refresh): what is asked while the logout is in
flight waits for it, and once the session has ended it is not sent at all, rather than going
out with the token being ended and coming back 401 (lib/api.js)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Request, Route

from tests.web.conftest import Guard, Stack
from tests.web.flows import log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# Start a logout and, while its DELETE is in flight, a GET and a refresh; answer what became
# of each (`sent` or the error's code).
START = """async () => {
    const app = document.querySelector('script[type=module]').src;
    const api = await import(new URL('lib/api.js', app).href);
    const outcome = (promise) => promise.then(() => 'sent', (error) => error.code || String(error));
    window.__logout = outcome(api.logout());
    window.__get = outcome(api.api.get('/api/v1/users/me'));
    window.__refresh = outcome(api.refresh());
}"""


def test_requests_made_during_a_logout_wait_for_it_and_are_not_sent_after_it(
    stack: Stack, new_context: Callable[..., BrowserContext], guard: Guard
) -> None:
    guard.strict = True
    user = stack.register()
    context = new_context()
    page = log_in(context, user.username, user.password)

    held: list[Route] = []
    context.route("**/api/v1/auth/session", lambda route: held.append(route))  # the logout, held
    asked: list[str] = []

    def seen(request: Request) -> None:
        if request.url.endswith(("/api/v1/users/me", "/api/v1/auth/session/refresh")):
            asked.append(f"{request.method} {request.url}")

    page.on("request", seen)
    with page.expect_request(lambda r: r.method == "DELETE" and r.url.endswith("/api/v1/auth/session")):
        page.evaluate(START)
    for _ in range(200):  # until Playwright has handed the held DELETE over (bounded)
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1, "the logout's DELETE was not intercepted"
    held[0].continue_()  # the server ends the session; then the page learns it

    outcomes = page.evaluate("async () => [await window.__logout, await window.__get, await window.__refresh]")
    assert outcomes == ["sent", "session_ended", "session_ended"]
    # Neither waited request went out, before the logout's answer or after it.
    assert asked == [], asked
