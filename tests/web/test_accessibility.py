"""Every page of the web app, with something on it, at 1280×800 and 390×844: axe-core finds no
serious or critical violation, nothing scrolls sideways on the phone, and a screenshot of each
is kept (tests/web/artifacts/test_accessibility.py_…/)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.web.browser import sample_png
from tests.web.conftest import (
    DESKTOP,
    PASSWORD,
    PHONE,
    Guard,
    Stack,
    axe_violations,
    bearer,
    describe_violations,
    no_horizontal_scroll,
    shoot,
)
from tests.web.flows import log_in, settled

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@dataclass
class Showcase:
    record_id: str
    conversation_id: str


@pytest.fixture(scope="module")
def showcase(stack: Stack) -> Iterator[Showcase]:
    """The administrator's pages with content: records (one with an image, one in the trash),
    a conversation with an answer, a memory and a digest."""
    admin, http = stack.admin, stack.http
    headers = bearer(admin.access_token)
    record = stack.create_record(
        admin,
        port="web",
        kind="diary",
        title="团队周会",
        content="今天和团队讨论了项目预算。\n\n- 预算表\n- 下周交付",
        tags=["工作", "预算"],
    )
    upload = http.post(
        f"{stack.web}/api/v1/records/{record['id']}/attachments",
        files={"file": ("whiteboard.png", sample_png(), "image/png")},
        headers=headers,
    )
    assert upload.status_code == 201, upload.text
    stack.create_record(admin, port="web", title="Grocery list", content="Milk, eggs, **coffee beans**")
    trashed = stack.create_record(admin, port="web", title="旧草稿", content="不要了")
    assert http.delete(f"{stack.web}/api/v1/records/{trashed['id']}", headers=headers).status_code in (200, 204)
    conversation = http.post(f"{stack.web}/api/v1/chat/conversations", json={}, headers=headers)
    assert conversation.status_code == 201, conversation.text
    conversation_id = conversation.json()["id"]
    answer = http.post(
        f"{stack.web}/api/v1/chat/conversations/{conversation_id}/messages",
        json={"content": "项目预算讨论了什么？"},
        headers=headers,
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    memory = http.post(
        f"{stack.web}/api/v1/memories", json={"content": "I prefer meetings in the morning"}, headers=headers
    )
    assert memory.status_code in (200, 201), memory.text
    digest = http.post(f"{stack.web}/api/v1/digests/generate", json={"period": "day"}, headers=headers, timeout=60)
    assert digest.status_code == 201, digest.text
    yield Showcase(record["id"], conversation_id)


def pages(showcase: Showcase) -> list[tuple[str, str]]:
    """(name, hash route) of every signed-in page."""
    return [
        ("timeline", "/#/"),
        ("composer", "/#/new"),
        ("record", f"/#/records/{showcase.record_id}"),
        ("search", "/#/search?q=%E9%A2%84%E7%AE%97"),  # 预算
        ("assistant", f"/#/assistant/{showcase.conversation_id}"),
        ("memories", "/#/memories"),
        ("digests", "/#/digests"),
        ("trash", "/#/trash"),
        ("settings", "/#/settings"),
        ("admin", "/#/admin"),
    ]


def _visit(page: Page, route: str) -> None:
    page.goto(route)
    settled(page)
    # Images (attachment thumbnails, signed links the browser loads itself) have arrived.
    page.wait_for_function("() => [...document.images].every((img) => img.complete)")


@pytest.mark.parametrize(
    ("viewport", "scheme"),
    [(DESKTOP, "light"), (PHONE, "light"), (DESKTOP, "dark")],
    ids=["1280x800", "390x844", "1280x800-dark"],
)
def test_every_page_is_accessible(
    stack: Stack,
    showcase: Showcase,
    new_context: Callable[..., BrowserContext],
    guard: Guard,
    artifacts: Path,
    viewport: dict[str, int],
    scheme: str,
) -> None:
    found: dict[str, list[dict]] = {}
    suffix = "" if scheme == "light" else f"-{scheme}"

    def check(page: Page, what: str) -> None:
        shoot(page, artifacts, what + suffix)
        if viewport["width"] <= PHONE["width"]:
            no_horizontal_scroll(page)
        violations = axe_violations(page)
        if violations:
            found[what] = violations

    anonymous = new_context(viewport=viewport, color_scheme=scheme).new_page()
    for what, route in (("login", "/#/login"), ("register", "/#/register")):
        _visit(anonymous, route)
        check(anonymous, what)

    context = new_context(viewport=viewport, color_scheme=scheme)
    page = log_in(context, stack.admin.username, PASSWORD)
    for what, route in pages(showcase):
        _visit(page, route)
        if what == "record":
            expect(page.locator("main img")).not_to_have_count(0)
        if what == "assistant":
            expect(page.locator("main .message")).not_to_have_count(0)
        check(page, what)

    if found:
        size = f"{viewport['width']}x{viewport['height']}, {scheme}"
        pytest.fail(f"axe-core: serious/critical violations ({size}):\n{describe_violations(found)}", pytrace=False)
