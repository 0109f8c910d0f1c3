"""A record whose title and content are markup (`<img src=x onerror=…><script>…</script>`) is
shown as text everywhere the app shows records: nothing runs, no dialog opens, and no
element from the content reaches the DOM."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.web.conftest import PASSWORD, Guard, Stack, bearer
from tests.web.flows import card, exact, expect_timeline, heading, log_in, name, no_dialogs, settled

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PAYLOAD = "<img src=x onerror=alert(1)><script>alert(2)</script>"

INJECTED = """() => ({
    images: [...document.querySelectorAll('img')].filter((img) => img.getAttribute('src') === 'x').length,
    handlers: [...document.querySelectorAll('*')].filter(
        (el) => [...el.attributes].some((attr) => attr.name.toLowerCase().startsWith('on'))).length,
    scripts: [...document.querySelectorAll('script')].filter((s) => s.textContent.includes('alert(')).length,
    fired: window.__xss === true,
})"""


def assert_inert(page: Page, where: str, dialogs: list[str]) -> None:
    found = page.evaluate(INJECTED)
    assert found == {"images": 0, "handlers": 0, "scripts": 0, "fired": False}, (where, found)
    assert not dialogs, (where, dialogs)


def test_markup_in_a_record_renders_inert_everywhere(
    stack: Stack, new_context: Callable[..., BrowserContext], guard: Guard
) -> None:
    user = stack.register()
    record = stack.create_record(user, port="web", title=PAYLOAD, content=PAYLOAD, tags=["xss"])
    shared = stack.http.post(f"{stack.web}/api/v1/records/{record['id']}/share", headers=bearer(user.access_token))
    assert shared.status_code in (200, 201), shared.text
    share_url = shared.json()["url"]
    if share_url.startswith("/"):
        share_url = stack.web + share_url

    context = new_context()
    dialogs: list[str] = []
    no_dialogs(context, dialogs)
    page = log_in(context, user.username, PASSWORD)

    # The timeline: the title is text, the excerpt is escaped Markdown.
    page.goto("/")
    expect_timeline(page)
    the_card = card(page, PAYLOAD)
    expect(the_card.get_by_role("link", name=PAYLOAD)).to_be_visible()
    assert_inert(page, "timeline", dialogs)

    # The record's page.
    the_card.get_by_role("link", name=PAYLOAD).click()
    expect(heading(page)).to_have_text(PAYLOAD)
    expect(page.locator("main .markdown").get_by_text(PAYLOAD)).to_be_visible()
    assert_inert(page, "record", dialogs)

    # Search results (the highlight is the API's HTML, sanitised to <mark> only).
    page.goto("/#/search?q=onerror")
    settled(page)
    hit = page.get_by_role("listitem").filter(has=page.get_by_role("link", name=PAYLOAD))
    expect(hit).to_have_count(1)
    assert_inert(page, "search", dialogs)

    # The assistant's answer quotes the record and cites it by its title.
    page.goto("/#/assistant")
    settled(page)
    page.get_by_role("button", name=exact(name(page, "new_conversation"))).click()
    expect(page).to_have_url(re.compile(r"#/assistant/[^/?]+$"))
    page.get_by_role("textbox", name=exact(name(page, "message"))).fill("onerror alert script")
    page.get_by_role("button", name=exact(name(page, "send"))).click()
    citation = page.get_by_role("list", name=exact(name(page, "sources"))).last.get_by_role("link", name=PAYLOAD)
    expect(citation).to_be_visible()
    assert_inert(page, "assistant", dialogs)

    # The public page, signed out.
    strangers = new_context()
    no_dialogs(strangers, dialogs)
    stranger = strangers.new_page()
    stranger.goto(share_url)
    expect(stranger.get_by_role("heading", name=PAYLOAD)).to_be_visible()
    expect(stranger.get_by_text(PAYLOAD).last).to_be_visible()
    assert_inert(stranger, "share page", dialogs)


# Markdown the sanitiser must defuse: a javascript: link, a remote image (the CSP allows
# images from this origin, data: and blob: only: it must become a link, not a request), and
# raw SVG with a handler.
SANITISED_TITLE = "Sanitiser check"
SANITISED_CONTENT = (
    "zebrafish [click](javascript:alert(3))\n\n![x](https://evil.example/x.png)\n\n<svg onload=alert(4)>"
)

# Every CSP violation the page reports, kept where the test can read it (an init script runs
# before the app, whatever the CSP).
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__csp.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""

DEFUSED = """() => ({
    javascript_links: document.querySelectorAll('a[href^="javascript:" i]').length,
    remote_images: [...document.querySelectorAll('img')].filter((img) => {
        const src = img.getAttribute('src') || '';
        return /^(https?:)?\\/\\//i.test(src) && new URL(src, location.href).origin !== location.origin;
    }).length,
    svgs_with_handlers: [...document.querySelectorAll('svg')].filter(
        (el) => [...el.attributes].some((attr) => attr.name.toLowerCase().startsWith('on'))).length,
    handlers: [...document.querySelectorAll('main *')].filter(
        (el) => [...el.attributes].some((attr) => attr.name.toLowerCase().startsWith('on'))).length,
    csp: window.__csp || [],
})"""


def assert_defused(page: Page, where: str, dialogs: list[str]) -> None:
    found = page.evaluate(DEFUSED)
    expected = {"javascript_links": 0, "remote_images": 0, "svgs_with_handlers": 0, "handlers": 0, "csp": []}
    assert found == expected, (where, found)
    assert not dialogs, (where, dialogs)


def test_markdown_is_sanitised_everywhere(
    stack: Stack, new_context: Callable[..., BrowserContext], guard: Guard
) -> None:
    user = stack.register()
    stack.create_record(user, port="web", title=SANITISED_TITLE, content=SANITISED_CONTENT, tags=["xss"])

    context = new_context()
    context.add_init_script(WATCH_CSP)
    dialogs: list[str] = []
    no_dialogs(context, dialogs)
    page = log_in(context, user.username, PASSWORD)

    # The timeline's excerpt is rendered Markdown.
    page.goto("/")
    expect_timeline(page)
    the_card = card(page, SANITISED_TITLE)
    expect(the_card.get_by_role("link", name=SANITISED_TITLE)).to_be_visible()
    expect(the_card.get_by_text("zebrafish")).to_be_visible()
    assert_defused(page, "timeline", dialogs)

    # The record's page: the remote image is a link to it (named by its alt text), the
    # javascript: link is no link.
    the_card.get_by_role("link", name=SANITISED_TITLE).click()
    expect(heading(page)).to_have_text(SANITISED_TITLE)
    body = page.locator("main .markdown")
    expect(body.get_by_text("zebrafish")).to_be_visible()
    remote = body.get_by_role("link", name="x", exact=True)
    expect(remote).to_have_attribute("href", "https://evil.example/x.png")
    expect(body.locator("img")).to_have_count(0)
    expect(body.locator("svg")).to_have_count(0)
    assert_defused(page, "record", dialogs)

    # Search results.
    page.goto("/#/search?q=zebrafish")
    settled(page)
    hit = page.get_by_role("listitem").filter(has=page.get_by_role("link", name=SANITISED_TITLE))
    expect(hit).to_have_count(1)
    assert_defused(page, "search", dialogs)
