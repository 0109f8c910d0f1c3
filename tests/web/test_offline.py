"""Offline: a record written with no connection waits on the device, survives the page being
closed (the service worker serves the app again while still offline), and reaches the server
exactly once when the connection is back."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.web.conftest import PASSWORD, Guard, Stack, User
from tests.web.flows import card, exact, expect_timeline, go, log_in, name, settled

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

TITLE = "地铁里写的"
CONTENT = "没有信号的时候记下：明天带伞。"
SYNC_WITHIN_S = 30.0  # a bound on waiting only


def _records_titled(stack: Stack, user: User, title: str) -> list[dict]:
    return [record for record in stack.records(user) if record.get("title") == title]


def test_a_record_written_offline_reaches_the_server_once(
    stack: Stack, new_context: Callable[..., BrowserContext], guard: Guard
) -> None:
    user = stack.register()
    context = new_context()
    page = log_in(context, user.username, PASSWORD)
    # The service worker has installed (the app shell is cached) and controls the page.
    page.wait_for_function("() => navigator.serviceWorker && navigator.serviceWorker.controller !== null")

    guard.set_offline(context, True)
    go(page, "new")
    settled(page)
    page.get_by_label(name(page, "title")).fill(TITLE)
    page.get_by_label(name(page, "content"), exact=True).fill(CONTENT)
    page.get_by_role("button", name=exact(name(page, "save"))).click()
    # Kept on the device, shown in the timeline as waiting.
    expect(page).to_have_url(page.url.split("#", 1)[0] + "#/")
    expect(card(page, TITLE)).to_be_visible()
    page.close()

    # A new page, still offline: the service worker serves the app, the record is still there.
    again = context.new_page()
    response = again.goto("/")
    assert response is not None and response.from_service_worker, "the shell did not come from the service worker"
    expect(again.get_by_role("heading", level=1)).to_be_visible()
    expect(card(again, TITLE)).to_be_visible()
    assert _records_titled(stack, user, TITLE) == []

    guard.set_offline(context, False)
    deadline = time.monotonic() + SYNC_WITHIN_S
    while not _records_titled(stack, user, TITLE) and time.monotonic() < deadline:
        again.wait_for_timeout(200)
    stored = _records_titled(stack, user, TITLE)
    assert len(stored) == 1, stored
    assert stored[0]["content"] == CONTENT
    # The outbox is empty now and the page shows the server's copy (a link to it).
    expect(card(again, TITLE).get_by_role("link", name=TITLE)).to_be_visible()
    expect(again.get_by_role("heading", name=exact(name(again, "outbox")))).to_have_count(0)
    # Nothing is sent twice: a reload (which flushes the outbox again) changes nothing.
    again.reload()
    expect_timeline(again)
    expect(card(again, TITLE)).to_have_count(1)
    assert len(_records_titled(stack, user, TITLE)) == 1
