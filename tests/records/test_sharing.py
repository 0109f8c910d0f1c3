"""Share links: `GET|POST|DELETE /api/v1/records/{id}/share`, `GET /api/v1/public/{slug}` and
the page `GET /s/{slug}` on the web port as each of them leaves it, on real apps, a real
database and a real Redis. What the page renders, and the page served over real HTTP, are
web_service's own: web_service/tests/test_share_page.py.
"""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from sqlalchemy import update

from common.deps import service_state
from common.records.models import Record
from common.records.sharing.service import PUBLIC_READ_RATE
from tests.records.conftest import Account, RecordsStack
from tests.support import assert_error
from web_service.tests.support import SHARE_PAGE_CSP, Elements, page_is_gone

PUBLIC_FIELDS = {"kind", "title", "content", "tags", "occurred_at", "updated_at"}


async def share(client: httpx.AsyncClient, account: Account, record_id: str, status: int = 201) -> dict[str, str]:
    response = await client.post(f"/api/v1/records/{record_id}/share", headers=account.headers)
    assert response.status_code == status, response.text
    return response.json()


async def revoke(client: httpx.AsyncClient, account: Account, record_id: str) -> None:
    response = await client.delete(f"/api/v1/records/{record_id}/share", headers=account.headers)
    assert response.status_code == 204, response.text


async def public_json_is_gone(client: httpx.AsyncClient, slug: str) -> None:
    response = await client.get(f"/api/v1/public/{slug}")
    assert_error(response, 404, "not_found")
    assert response.headers["cache-control"] == "no-store"


async def test_shared_record_is_readable_without_login(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(
        records_api,
        records_owner,
        kind="diary",
        title="周末去爬山",
        content="今天天气很好，我们去了**香山**。",
        tags=["旅行", "Weekend"],
        occurred_at="2026-10-03T08:30:00+00:00",
    )
    link = await share(records_api, records_owner, record["id"])
    assert set(link) == {"slug", "url"}
    assert link["url"] in (f"http://testserver/s/{link['slug']}", f"http://testserver:8000/s/{link['slug']}")

    # JSON, on the port that shared it, with no Authorization header.
    response = await records_api.get(f"/api/v1/public/{link['slug']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == PUBLIC_FIELDS
    assert body["kind"] == "diary"
    assert body["title"] == "周末去爬山"
    assert body["content"] == "今天天气很好，我们去了**香山**。"
    assert body["tags"] == ["旅行", "weekend"]
    assert body["occurred_at"].startswith("2026-10-03T08:30:00")
    assert response.headers["cache-control"] == "no-store"
    assert "noindex" in response.headers["x-robots-tag"]

    # The page, on the web port.
    page = await records_stack.web.get(link["url"])
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == SHARE_PAGE_CSP
    assert "noindex" in page.headers["x-robots-tag"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    parsed = Elements(page.text)
    text = parsed.all_text
    for expected in ("周末去爬山", "日记", "2026-10-03", "#旅行", "#weekend", "Shared from Jilu 记录"):
        assert expected in text, expected
    assert parsed.tags("strong")  # the Markdown was rendered
    assert "香山" in text

    # Sharing is a change to the record: `shared`, a new version, an event for sync and AI.
    current = (await records_api.get(f"/api/v1/records/{record['id']}", headers=records_owner.headers)).json()
    assert current["shared"] is True
    assert current["version"] == record["version"] + 1
    last_event = (await records_stack.events())[-1]
    assert last_event["type"] == "updated"
    assert last_event["record_id"] == record["id"]
    assert last_event["version"] == str(current["version"])


async def test_sharing_a_shared_record_returns_the_same_link(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner)
    first = await share(records_api, records_owner, record["id"])
    version = (await records_stack.record_row(record["id"])).version
    again = await share(records_api, records_owner, record["id"], status=200)
    assert again == first
    assert (await records_stack.record_row(record["id"])).version == version  # nothing changed


async def test_share_urls_are_absolute_on_the_web_port(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_port: str, records_owner: Account
) -> None:
    """Made on either port, a link opens the web port's page: by default the request's host
    (the web port number on the same host when the mobile port made it)."""
    record = await records_stack.create(records_api, records_owner)
    link = await share(records_api, records_owner, record["id"])
    web_port = service_state(records_stack.apps[records_port]).settings.web_port
    expected = "http://testserver" if records_port == "web" else f"http://testserver:{web_port}"
    assert link["url"] == f"{expected}/s/{link['slug']}"
    response = await records_api.get(f"/api/v1/records/{record['id']}/share", headers=records_owner.headers)
    assert response.json() == link
    # The Host header as received, when no proxy is trusted.
    headers = {**records_owner.headers, "Host": "phone.lan:8002"}
    response = await records_api.get(f"/api/v1/records/{record['id']}/share", headers=headers)
    host = "phone.lan:8002" if records_port == "web" else f"phone.lan:{web_port}"
    assert response.json()["url"] == f"http://{host}/s/{link['slug']}"
    # It opens the page.
    page = await records_stack.web.get(link["url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


async def test_share_urls_honour_forwarded_headers_from_trusted_proxies_only(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_port: str, records_owner: Account
) -> None:
    settings = service_state(records_stack.apps[records_port]).settings
    record = await records_stack.create(records_api, records_owner)
    slug = (await share(records_api, records_owner, record["id"]))["slug"]
    path = f"/api/v1/records/{record['id']}/share"
    forwarded = {**records_owner.headers, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "jilu.example"}

    # The in-process client's peer is 127.0.0.1: not trusted, so the headers are ignored.
    untrusted = (await records_api.get(path, headers=forwarded)).json()["url"]
    assert untrusted.startswith("http://testserver") and "jilu.example" not in untrusted

    settings.trusted_proxies = ["127.0.0.1/32"]
    trusted = (await records_api.get(path, headers=forwarded)).json()["url"]
    if records_port == "web":
        assert trusted == f"https://jilu.example/s/{slug}"
    else:  # no JILU_PUBLIC_WEB_URL: the web port's number on the host the proxy was asked for
        assert trusted == f"https://jilu.example:{settings.web_port}/s/{slug}"

    # A configured web URL wins on both ports, proxy or not.
    settings.public_web_url = "https://notes.example"
    for headers in (forwarded, records_owner.headers):
        assert (await records_api.get(path, headers=headers)).json()["url"] == f"https://notes.example/s/{slug}"
    response = await records_api.post(path, headers=records_owner.headers)
    assert response.status_code == 200 and response.json()["url"] == f"https://notes.example/s/{slug}"


async def test_reading_a_link_never_makes_one(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner)
    path = f"/api/v1/records/{record['id']}/share"

    assert_error(await records_api.get(path, headers=records_owner.headers), 404, "not_found")
    row = await records_stack.record_row(record["id"])
    assert (row.share_slug, row.version) == (None, record["version"])  # asking shared nothing

    link = await share(records_api, records_owner, record["id"])
    response = await records_api.get(path, headers=records_owner.headers)
    assert response.status_code == 200, response.text
    assert response.json() == link

    await revoke(records_api, records_owner, record["id"])
    assert_error(await records_api.get(path, headers=records_owner.headers), 404, "not_found")
    assert (await records_stack.record_row(record["id"])).share_slug is None


async def test_revoking_kills_page_and_json_for_good(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner, title="short-lived")
    link = await share(records_api, records_owner, record["id"])
    assert (await records_stack.web.get(link["url"])).status_code == 200

    await revoke(records_api, records_owner, record["id"])
    await public_json_is_gone(records_api, link["slug"])
    await page_is_gone(records_stack.web, link["url"])
    current = (await records_api.get(f"/api/v1/records/{record['id']}", headers=records_owner.headers)).json()
    assert current["shared"] is False
    assert current["version"] == record["version"] + 2  # shared, then unshared
    assert (await records_stack.record_row(record["id"])).share_slug is None

    # Revoking again is harmless and changes nothing.
    await revoke(records_api, records_owner, record["id"])
    assert (await records_stack.record_row(record["id"])).version == current["version"]

    # Sharing again makes a new link; the old one stays dead.
    renewed = await share(records_api, records_owner, record["id"])
    assert renewed["slug"] != link["slug"]
    assert (await records_api.get(f"/api/v1/public/{renewed['slug']}")).status_code == 200
    await public_json_is_gone(records_api, link["slug"])
    await page_is_gone(records_stack.web, link["url"])


async def test_another_users_record_cannot_be_shared_or_revoked(
    records_stack: RecordsStack,
    records_api: httpx.AsyncClient,
    records_owner: Account,
    records_stranger: Account,
) -> None:
    record = await records_stack.create(records_api, records_owner)
    path = f"/api/v1/records/{record['id']}/share"

    assert_error(await records_api.post(path, headers=records_stranger.headers), 404, "not_found")
    assert (await records_stack.record_row(record["id"])).share_slug is None

    assert_error(await records_api.get(path, headers=records_stranger.headers), 404, "not_found")
    link = await share(records_api, records_owner, record["id"])
    assert_error(await records_api.get(path, headers=records_stranger.headers), 404, "not_found")
    assert_error(await records_api.post(path, headers=records_stranger.headers), 404, "not_found")
    assert_error(await records_api.delete(path, headers=records_stranger.headers), 404, "not_found")
    assert (await records_stack.record_row(record["id"])).share_slug == link["slug"]  # still shared
    assert (await records_api.get(f"/api/v1/public/{link['slug']}")).status_code == 200

    unknown = "/api/v1/records/01900000-0000-7000-8000-000000000000/share"
    assert_error(await records_api.get(unknown, headers=records_owner.headers), 404, "not_found")
    assert_error(await records_api.post(unknown, headers=records_owner.headers), 404, "not_found")
    assert_error(await records_api.delete(unknown, headers=records_owner.headers), 404, "not_found")


async def test_sharing_needs_login(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner)
    path = f"/api/v1/records/{record['id']}/share"
    assert_error(await records_api.get(path), 401, "unauthorized")
    assert_error(await records_api.post(path), 401, "unauthorized")
    assert_error(await records_api.delete(path), 401, "unauthorized")
    assert (await records_stack.record_row(record["id"])).share_slug is None


async def test_deleting_the_record_kills_its_link(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner)
    link = await share(records_api, records_owner, record["id"])

    response = await records_api.delete(f"/api/v1/records/{record['id']}", headers=records_owner.headers)
    assert response.status_code == 204, response.text
    await public_json_is_gone(records_api, link["slug"])
    await page_is_gone(records_stack.web, link["url"])
    path = f"/api/v1/records/{record['id']}/share"
    assert_error(await records_api.post(path, headers=records_owner.headers), 404, "not_found")
    assert_error(await records_api.delete(path, headers=records_owner.headers), 404, "not_found")


async def test_a_deleted_record_with_a_stale_slug_is_not_served(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    """Even if a deleted row still carried a slug (an older write path, an import), the
    public side only serves live records."""
    web = records_stack.web
    record = await records_stack.create(web, records_owner)
    link = await share(web, records_owner, record["id"])
    async with service_state(records_stack.apps["web"]).write_sessionmaker() as session, session.begin():
        await session.execute(update(Record).where(Record.id == record["id"]).values(is_deleted=True))
    await public_json_is_gone(web, link["slug"])
    await page_is_gone(web, link["url"])


async def test_slugs_are_long_random_and_never_reused(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    first = await records_stack.create(records_api, records_owner)
    second = await records_stack.create(records_api, records_owner)
    slugs = [(await share(records_api, records_owner, first["id"]))["slug"]]
    slugs.append((await share(records_api, records_owner, second["id"]))["slug"])
    await revoke(records_api, records_owner, first["id"])
    slugs.append((await share(records_api, records_owner, first["id"]))["slug"])

    assert len(set(slugs)) == 3
    for slug in slugs:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", slug), slug
        raw = base64.urlsafe_b64decode(slug + "=" * (-len(slug) % 4))
        assert len(raw) * 8 >= 128, slug
        assert len(set(raw)) > len(raw) // 2  # random bytes, not a padded counter
    # No two slugs share a long common prefix (as sequential or time-based ids would).
    assert len({slug[:8] for slug in slugs}) == 3


async def test_public_record_exposes_no_private_fields(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner, content="公开的内容")
    link = await share(records_api, records_owner, record["id"])
    async with service_state(records_stack.apps["web"]).write_sessionmaker() as session, session.begin():
        await session.execute(
            update(Record)
            .where(Record.id == record["id"])
            .values(
                ai_title="AI-TITLE-MARKER",
                ai_summary="AI-SUMMARY-MARKER",
                ai_tags=["ai-tag-marker"],
                device_id="DEVICE-MARKER",
            )
        )

    response = await records_api.get(f"/api/v1/public/{link['slug']}")
    assert response.status_code == 200, response.text
    assert set(response.json()) == PUBLIC_FIELDS
    page = await records_stack.web.get(link["url"])
    assert page.status_code == 200
    assert "公开的内容" in page.text
    for text in (response.text, page.text):
        for secret in (record["id"], records_owner.id, "AI-TITLE-MARKER", "AI-SUMMARY-MARKER", "ai-tag-marker"):
            assert secret not in text
        assert "DEVICE-MARKER" not in text
        assert "version" not in text


@pytest.mark.parametrize(
    "slug",
    [
        "x",
        "kzfJWdXq2Ij-kcQoRY0wC-nSX9fM3m0i",  # well-formed, never issued (fixed: xdist workers must collect alike)
        "%3Cscript%3Ealert(1)%3C",
        "a" * 64 + "!",
        "....etc",
        "' OR '1'='1",
    ],
)
async def test_unknown_or_malformed_slugs_are_404(records_stack: RecordsStack, slug: str) -> None:
    await public_json_is_gone(records_stack.web, slug)
    await public_json_is_gone(records_stack.mobile, slug)
    await page_is_gone(records_stack.web, f"/s/{slug}")


async def test_overlong_slug_is_a_client_error(records_stack: RecordsStack) -> None:
    slug = "a" * 500
    response = await records_stack.web.get(f"/api/v1/public/{slug}")
    assert_error(response, 422, "validation_error")
    await page_is_gone(records_stack.web, f"/s/{slug}")


async def test_public_reads_are_rate_limited_per_address(records_stack: RecordsStack) -> None:
    limit = int(PUBLIC_READ_RATE.split("/")[0])
    web = records_stack.web
    for _ in range(limit):
        assert (await web.get("/api/v1/public/x")).status_code == 404
    response = await web.get("/api/v1/public/x")
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1
    page = await web.get("/s/x")  # the page counts against the same budget
    assert page.status_code == 429
    assert page.headers["content-type"].startswith("text/html")
    assert int(page.headers["retry-after"]) >= 1
    assert "请求太频繁" in page.text
