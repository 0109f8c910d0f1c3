"""Attachments when the API's absolute URLs name another origin than the page's: a server with
`JILU_PUBLIC_WEB_URL` set for a proxy, opened by its local address (or another host name).
The app loads every attachment from its own origin (the URL's path and query), so `img-src
'self'` allows the images and the bearer token goes where it may; and it fetches a file once
per attachment and content, however often its signed URL changes.

The package runs one stack, whose public URL is its own; this test has its answers name
`ELSEWHERE` on the way to the browser, as the configured server would (that the server does
is `tests/records/test_signed_urls.py::test_attachment_urls_use_the_answering_ports_base_url`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Request, Route, expect

from tests.web.browser import sample_png
from tests.web.conftest import PASSWORD, Guard, Stack, bearer
from tests.web.flows import exact, heading, log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ELSEWHERE = "https://jilu.invalid"
IMAGE_LOADED = "(img) => img.complete && img.naturalWidth > 0"
SAME_ORIGIN_FILE = re.compile(r"^/api/v1/files/[0-9a-f-]+/(thumb|original)\?owner=")
# The JSON answers that carry attachments (not the event stream: it stays untouched).
RECORD_ANSWERS = re.compile(r"/api/v1/(records|sync/changes|search|trash)([/?]|$)")


def test_attachments_load_from_the_pages_origin_and_are_fetched_once_per_content(
    stack: Stack, new_context: Callable[..., BrowserContext], guard: Guard
) -> None:
    user = stack.register()
    record = stack.create_record(user, port="web", title="Whiteboard", content="with two files")
    uploaded = {}
    for filename, data, content_type in (
        ("board.png", sample_png(), "image/png"),
        ("notes.txt", "预算 and budget\n".encode(), "text/plain"),
    ):
        response = stack.http.post(
            f"{stack.web}/api/v1/records/{record['id']}/attachments",
            files={"file": (filename, data, content_type)},
            headers=bearer(user.access_token),
        )
        assert response.status_code == 201, response.text
        uploaded[filename] = response.json()

    context = new_context(service_workers="block")  # so that every API answer passes `elsewhere`
    file_requests: list[str] = []

    def on_request(request: Request) -> None:
        if "/api/v1/files/" in request.url:
            file_requests.append(request.url)

    context.on("request", on_request)

    def elsewhere(route: Route) -> None:
        response = route.fetch()
        if "json" not in response.headers.get("content-type", ""):
            route.fulfill(response=response)
            return
        route.fulfill(response=response, body=response.text().replace(stack.web, ELSEWHERE))

    context.route(RECORD_ANSWERS, elsewhere)
    page = log_in(context, user.username, PASSWORD)
    page.goto(f"/#/records/{record['id']}")
    expect(heading(page)).to_have_text("Whiteboard")

    # The image: its signed URL's path and query, on this origin; loaded.
    thumb = page.locator("main .attachment-list img")
    expect(thumb).to_have_attribute("src", SAME_ORIGIN_FILE)
    page.wait_for_function(IMAGE_LOADED, arg=thumb.element_handle())
    page.get_by_role("button", name=exact("Open image board.png")).click()
    viewer = page.locator("img.image-viewer-image")
    expect(viewer).to_have_attribute("src", re.compile(r"^/api/v1/files/[0-9a-f-]+/original\?"))
    page.wait_for_function(IMAGE_LOADED, arg=viewer.element_handle())
    page.keyboard.press("Escape")

    # The download: fetched (with the token) from this origin, saved under its name.
    with page.expect_download() as download:
        page.get_by_role("button", name=exact("Download notes.txt")).click()
    assert download.value.suggested_filename == "notes.txt"
    assert open(download.value.path(), "rb").read() == "预算 and budget\n".encode()

    # The same file under a newer signed URL comes from the blob cache, not the network again.
    assert not [url for url in file_requests if not url.startswith(stack.web)], file_requests
    fetched = len(file_requests)
    notes = {**uploaded["notes.txt"], "url": uploaded["notes.txt"]["url"].replace("sig=", "sig=0")}
    same = page.evaluate(
        """async ([first, later]) => {
            const app = document.querySelector('script[type=module]').src;
            const api = await import(new URL('lib/api.js', app).href);
            return (await api.attachmentUrl(first)) === (await api.attachmentUrl(later));
        }""",
        [uploaded["notes.txt"], notes],
    )
    assert same is True
    assert len(file_requests) == fetched, file_requests[fetched:]
