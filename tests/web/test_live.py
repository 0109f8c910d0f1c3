"""A record made on the phone (the mobile port, over plain HTTP with the user's token)
appears in the timeline open in the browser, without a reload."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.web.conftest import PASSWORD, Guard, Stack, unique
from tests.web.flows import card, expect_timeline, log_in_ui

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# The goal is 2 s (bench/web.py measures it); this bound only keeps a busy machine from failing it.
APPEARS_WITHIN_MS = 10_000


def test_a_record_from_the_phone_appears_in_the_open_timeline(
    stack: Stack, new_context: Callable[..., BrowserContext], guard: Guard
) -> None:
    user = stack.register()
    earlier = stack.create_record(user, title="昨天的记录", content="已经在时间线上")
    context = new_context()
    page = context.new_page()
    # Signed in, with the live stream connected (what is made before it connects, a reload finds).
    with page.expect_response(lambda response: response.url.endswith("/api/v1/events")) as stream:
        log_in_ui(page, user.username, PASSWORD)
    assert stream.value.ok
    expect_timeline(page)
    expect(card(page, earlier["title"])).to_be_visible()
    page.evaluate("() => { window.__sameDocument = true; }")

    title = f"手机上记的 {unique('live')}"
    stack.create_record(user, port="mobile", title=title, content="在地铁上写的")

    expect(card(page, title)).to_be_visible(timeout=APPEARS_WITHIN_MS)
    assert page.evaluate("() => window.__sameDocument === true"), "the page was reloaded"
    # Newest first: above the earlier one.
    titles = page.locator("main article").all_inner_texts()
    assert titles and title in titles[0], titles
