"""The public share page `GET /s/{slug}` (`web_service/app/web/share.py`): what it makes of a
shared record (Markdown rendered, anything hostile inert), the same over real HTTP with uvicorn
serving on its own loop, and its answer before the app runs. The sharing API of both ports,
and the page as each API call leaves it, are tested in tests/records/test_sharing.py."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.support import assert_error
from web_service.app.web import create_flask_app
from web_service.app.web.share import SharedRecords
from web_service.tests.support import RECORDS, SHARE_PAGE_CSP, WebStack, assert_inert, bearer, page_is_gone

HOSTILE_CONTENT = "\n\n".join(
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        "[y](JaVaScRiPt:alert(2)) [z](vbscript:msgbox(3)) [d](data:text/html;base64,PHNjcmlwdD4=)",
        '<a href="javascript:alert(4)">raw link</a>',
        "![pic](javascript:alert(5))",
        "<iframe src=https://evil.example></iframe>",
        '<svg onload="alert(6)"></svg>',
    ]
)


async def owner_headers(web_stack: WebStack) -> dict[str, str]:
    """The Authorization header of a newly registered owner."""
    await web_stack.register("owner")
    return bearer(await web_stack.token("owner"))


async def shared(web: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> tuple[str, dict[str, str]]:
    """A new record of `fields`, shared: its id and its link."""
    record = await web.post(RECORDS, json={"content": "something worth keeping", **fields}, headers=headers)
    assert record.status_code == 201, record.text
    link = await web.post(f"{RECORDS}/{record.json()['id']}/share", headers=headers)
    assert link.status_code == 201, link.text
    return record.json()["id"], link.json()


async def test_hostile_content_renders_inert(web_stack: WebStack) -> None:
    headers, web = await owner_headers(web_stack), (await web_stack.browser()).client
    _, link = await shared(
        web, headers, title="<script>alert('title')</script>", content=HOSTILE_CONTENT, tags=["<b>x</b>"]
    )
    response = await web.get(link["url"])
    assert response.status_code == 200, response.text
    html = response.text
    assert "<script" not in html.lower()
    page = assert_inert(html)
    assert not page.tags("img")  # neither the raw <img> nor the javascript: image became one
    assert not [a for a in page.tags("a") if a.get("href")]  # no link survived
    # The hostile text is shown as text, escaped.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert('title')</script>" in page.all_text
    assert "<b>x</b>" in page.all_text
    assert "[x](javascript:alert(1))" in page.all_text
    assert response.headers["content-security-policy"] == SHARE_PAGE_CSP


async def test_markdown_formatting_renders(web_stack: WebStack) -> None:
    headers, web = await owner_headers(web_stack), (await web_stack.browser()).client
    content = (
        "## 今日计划\n\n"
        "- 写*周报*\n- 看**预算**\n\n"
        "1. first\n2. second\n\n"
        "> 引用一句话\n\n"
        "`code` and [a site](https://example.com/page?a=1&b=2)\n"
    )
    _, link = await shared(web, headers, content=content)
    response = await web.get(link["url"])
    assert response.status_code == 200, response.text
    page = assert_inert(response.text)
    assert "今日计划" in "".join(page.text)
    assert page.tags("h2")
    assert len(page.tags("li")) == 4
    assert page.tags("ul") and page.tags("ol")
    assert page.tags("em") and page.tags("strong") and page.tags("blockquote") and page.tags("code")
    links = [a for a in page.tags("a") if a.get("href")]
    assert [a["href"] for a in links] == ["https://example.com/page?a=1&b=2"]
    assert "noopener" in links[0]["rel"] and "nofollow" in links[0]["rel"]
    assert "## 今日计划" not in response.text  # rendered, not shown raw


async def test_share_page_over_real_http(web_stack: WebStack) -> None:
    """uvicorn serves the web app on its own loop in another thread, as in production."""
    headers, client = await owner_headers(web_stack), await web_stack.served()
    # Shared through the real server: the absolute link names the host and port it was asked on.
    record_id, link = await shared(client, headers, title="真的服务器", content="- 一\n- 二")
    assert link["url"] == f"{web_stack.web_url.rstrip('/')}/s/{link['slug']}"
    page = await client.get(link["url"])
    assert page.status_code == 200, page.text
    assert page.headers["content-security-policy"] == SHARE_PAGE_CSP
    parsed = assert_inert(page.text)
    assert "真的服务器" in parsed.all_text
    assert len(parsed.tags("li")) == 2
    assert (await client.get(f"/api/v1/public/{link['slug']}")).status_code == 200

    revoked = await client.delete(f"{RECORDS}/{record_id}/share", headers=headers)
    assert revoked.status_code == 204, revoked.text
    await page_is_gone(client, link["url"])
    assert_error(await client.get(f"/api/v1/public/{link['slug']}"), 404, "not_found")


def test_share_page_answers_503_until_the_app_runs() -> None:
    """Without the running app's loop (before start-up, after shutdown) there is no database
    to ask: the page says so instead of hanging or failing with a 500."""
    client = create_flask_app(SharedRecords()).test_client()
    response = client.get(f"/s/{secrets.token_urlsafe(24)}")
    assert response.status_code == 503
    assert response.content_type.startswith("text/html")
    assert "暂时无法打开" in response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"] == SHARE_PAGE_CSP
