"""Signed attachment URLs (`/api/v1/files/{id}/{variant}`), ETags and 304s on both download
routes, uploads that answer with the record's version, the sync feed after adds and removals,
and absolute attachment URLs per port — on mobile and web, SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextvars
import hashlib
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from common.config import JiluSettings
from common.deps import service_state
from common.records.attachments import links
from common.security.keys import sign, verify_signature
from common.security.sessions import standing_key
from tests.records.attachment_support import image_bytes
from tests.records.conftest import RECORDS, Account, RecordsStack
from tests.support import assert_error

PNG = image_bytes("PNG", (640, 480))
SIGNED = re.compile(r"^http://testserver/api/v1/files/(?P<id>[^/?]+)/(?P<variant>original|thumb)\?(?P<query>.+)$")


async def upload(api: httpx.AsyncClient, account: Account, record_id: str, data: bytes = PNG) -> httpx.Response:
    files = {"file": ("photo.png", data, "image/png")}
    response = await api.post(f"{RECORDS}/{record_id}/attachments", files=files, headers=account.headers)
    assert response.status_code == 201, response.text
    return response


async def uploaded(stack: RecordsStack, api: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    """A new record of `account`'s with a PNG attached; the upload's answer."""
    record = await stack.create(api, account)
    return (await upload(api, account, record["id"])).json()


def parts(url: str) -> dict[str, str]:
    query = parse_qs(urlsplit(url).query)
    return {"path": urlsplit(url).path, **{k: v[0] for k, v in query.items()}}


def with_query(url: str, **changes: str) -> str:
    p = parts(url)
    p.update(changes)
    return f"http://testserver{p['path']}?owner={p['owner']}&expires={p['expires']}&sig={p['sig']}"


async def test_a_signed_url_needs_no_token(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    body = await uploaded(records_stack, records_api, records_owner)
    match = SIGNED.match(body["url"])
    assert match and match["id"] == body["id"] and match["variant"] == "original", body["url"]
    assert set(parts(body["url"])) == {"path", "owner", "expires", "sig"}

    response = await records_api.get(body["url"])  # no Authorization header
    assert response.status_code == 200, response.text
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"] == f'"{hashlib.sha256(PNG).hexdigest()}"'
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"].startswith("inline;")
    cache = re.fullmatch(r"private, max-age=(\d+)", response.headers["cache-control"])
    expires_in = int(parts(body["url"])["expires"]) - links.now()
    assert cache and abs(int(cache[1]) - expires_in) <= 2
    assert 3600 - 2 <= int(cache[1]) <= 3600 + links.EXPIRY_BUCKET

    thumb = await records_api.get(body["thumbnail_url"])
    assert thumb.status_code == 200, thumb.text
    assert thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["etag"] == f'"{hashlib.sha256(thumb.content).hexdigest()}"'
    bearer = await records_api.get(f"/api/v1/attachments/{body['id']}?thumb=1", headers=records_owner.headers)
    assert bearer.content == thumb.content and bearer.headers["etag"] == thumb.headers["etag"]


async def test_every_answer_carries_signed_urls_stable_within_a_bucket(
    records_stack: RecordsStack,
    records_api: httpx.AsyncClient,
    records_owner: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(links, "now", lambda: 1_900_000_000.0)
    body = await uploaded(records_stack, records_api, records_owner)
    record_id = (await records_api.get(RECORDS, headers=records_owner.headers)).json()["items"][0]["id"]
    views = {
        "record": (await records_api.get(f"{RECORDS}/{record_id}", headers=records_owner.headers)).json(),
        "list": (await records_api.get(RECORDS, headers=records_owner.headers)).json()["items"][0],
        "sync": (await records_api.get("/api/v1/sync/changes", headers=records_owner.headers)).json()["changes"][-1],
    }
    for name, record in views.items():
        (attachment,) = record["attachments"]
        # The same URL on every read until the next bucket: caches keyed on the URL hold.
        assert attachment["url"] == body["url"], name
        assert attachment["thumbnail_url"] == body["thumbnail_url"], name
    expires = int(parts(body["url"])["expires"])
    assert expires % links.EXPIRY_BUCKET == 0 and 3600 <= expires - 1_900_000_000 < 3600 + links.EXPIRY_BUCKET

    # A later bucket signs a later expiry; both links work while they last.
    monkeypatch.setattr(links, "now", lambda: 1_900_000_000.0 + links.EXPIRY_BUCKET)
    later = (await records_api.get(f"{RECORDS}/{record_id}", headers=records_owner.headers)).json()
    assert int(parts(later["attachments"][0]["url"])["expires"]) == expires + links.EXPIRY_BUCKET
    for url in (body["url"], later["attachments"][0]["url"]):
        assert (await records_api.get(url)).content == PNG


def test_expiries_round_up_to_a_bucket_never_longer_than_the_lifetime() -> None:
    assert links.expiry(1000.0, 3600) == 4800  # 4600 rounded up to 300 s
    assert links.expiry(1001.0, 3600) == links.expiry(1199.0, 3600) == 4800
    assert links.expiry(1201.0, 3600) == 5100
    assert links.expiry(1000.5, 2) == 1004  # a short lifetime, a bucket of 2 s
    for now in (0.0, 17.3, 299.9, 1e9 + 0.1):
        assert now + 3600 <= links.expiry(now, 3600) < now + 3600 + links.EXPIRY_BUCKET


async def test_an_expired_url_is_refused(
    records_stack: RecordsStack,
    records_api: httpx.AsyncClient,
    records_owner: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = await uploaded(records_stack, records_api, records_owner)
    secret = service_state(records_stack.apps["mobile"]).settings.secret
    past = int(links.now()) - 1
    url = "http://testserver" + links.signed_path(secret, body["id"], "original", records_owner.id, past)
    detail = assert_error(await records_api.get(url), 404, "not_found")
    assert "expired" in str(detail)
    # A valid signature for half a minute from now works: then the clock passes it.
    soon = int(links.now()) + 30
    url = "http://testserver" + links.signed_path(secret, body["id"], "original", records_owner.id, soon)
    assert (await records_api.get(url)).status_code == 200
    monkeypatch.setattr(links, "now", lambda: soon + 0.5)
    assert_error(await records_api.get(url), 404, "not_found")


async def test_a_short_lifetime_setting_gives_short_urls(
    records_stack: RecordsStack,
    records_api: httpx.AsyncClient,
    records_port: str,
    records_owner: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service_state(records_stack.apps[records_port]).settings.attachment_url_seconds = 5
    start = links.now()
    body = await uploaded(records_stack, records_api, records_owner)
    expires = int(parts(body["url"])["expires"])
    assert start + 5 <= expires <= links.now() + 10
    assert (await records_api.get(body["url"])).status_code == 200
    monkeypatch.setattr(links, "now", lambda: expires + 1.0)
    assert_error(await records_api.get(body["url"]), 404, "not_found")
    assert_error(await records_api.get(body["thumbnail_url"]), 404, "not_found")


async def test_a_changed_url_is_refused(
    records_stack: RecordsStack,
    records_api: httpx.AsyncClient,
    records_owner: Account,
    records_stranger: Account,
) -> None:
    mine = await uploaded(records_stack, records_api, records_owner)
    other_of_mine = await uploaded(records_stack, records_api, records_owner)
    theirs = await uploaded(records_stack, records_api, records_stranger)
    secret = service_state(records_stack.apps["mobile"]).settings.secret
    p = parts(mine["url"])
    flipped = p["sig"][:-1] + ("0" if p["sig"][-1] != "0" else "1")
    refused = {
        "tampered signature": with_query(mine["url"], sig=flipped),
        "later expiry": with_query(mine["url"], expires=str(int(p["expires"]) + 3600)),
        "other variant": with_query(mine["url"], path=p["path"].replace("/original", "/thumb")),
        "another attachment of the owner": with_query(
            mine["url"], path=p["path"].replace(mine["id"], other_of_mine["id"])
        ),
        "another owner named": with_query(mine["url"], owner=records_stranger.id),
        # The second user's own valid URL, pointed at the first user's attachment.
        "their signature, my id": with_query(
            theirs["url"], path=parts(theirs["url"])["path"].replace(theirs["id"], mine["id"])
        ),
        # A valid signature for the second user over the first user's attachment id: the
        # file is looked up among the second user's, where it is not.
        "signed for the wrong owner": "http://testserver"
        + links.signed_path(secret, mine["id"], "original", records_stranger.id, int(p["expires"])),
        "signed with another purpose's key": with_query(
            mine["url"],
            sig=links.sign(secret, "client-address", f"{mine['id']}\noriginal\n{records_owner.id}\n{p['expires']}"),
        ),
    }
    details = set()
    for name, url in refused.items():
        response = await records_api.get(url)
        assert response.status_code == 404, (name, response.status_code)
        details.add(str(assert_error(response, 404, "not_found")))
    assert details == {links.NOT_VALID}  # nothing tells which part failed
    # The untouched URLs still work.
    assert (await records_api.get(mine["url"])).content == PNG
    assert (await records_api.get(theirs["url"])).content == PNG
    # Malformed query strings are a 422 like anywhere else, never a 500.
    assert_error(await records_api.get(with_query(mine["url"], sig=p["sig"][:32])), 422, "validation_error")
    bad = await records_api.get(with_query(mine["url"], expires="soon"))
    assert_error(bad, 422, "validation_error")
    assert (await records_api.get(f"/api/v1/files/{mine['id']}/original")).status_code == 422
    assert (
        await records_api.get(with_query(mine["url"], path=p["path"].replace("/original", "/big")))
    ).status_code == 422


async def test_a_malformed_signature_is_422_never_a_500(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    body = await uploaded(records_stack, records_api, records_owner)
    sig = parts(body["url"])["sig"]
    assert re.fullmatch(r"[0-9a-f]{64}", sig)  # what a signature looks like
    malformed = {
        "non-ASCII": "%C3%A9",
        "non-ASCII, the right length": "%C3%A9" * 64,
        "upper-case hex": sig.upper(),
        "too short": sig[:32],
        "too long": sig + "0",
        "not hex": "g" * 64,
        "empty": "",
    }
    for name, presented in malformed.items():
        response = await records_api.get(with_query(body["url"], sig=presented))
        assert response.status_code == 422, (name, response.status_code, response.text)
        assert_error(response, 422, "validation_error")
    assert (await records_api.get(body["url"])).content == PNG


def test_signatures_are_compared_as_bytes_whatever_was_presented() -> None:
    """No caller can make the comparison raise (`hmac.compare_digest` refuses non-ASCII str)."""
    good = sign("secret", "purpose", "message")
    assert verify_signature("secret", "purpose", "message", good)
    for presented in ("é" * 64, "é", "\ud800" * 64, "\x00" * 64, good.upper(), good[:-1], ""):
        assert not verify_signature("secret", "purpose", "message", presented), presented


async def test_a_request_leaves_no_attachment_links_in_the_callers_context(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    """In-process (ASGITransport) the app runs in the caller's context: nothing of one
    request's links (its Host, say) may be left there for the next code to pick up."""
    body = await uploaded(records_stack, records_api, records_owner)
    record_id = (await records_api.get(RECORDS, headers=records_owner.headers)).json()["items"][0]["id"]
    response = await records_api.get(f"{RECORDS}/{record_id}", headers={**records_owner.headers, "Host": "a.example"})
    assert response.json()["attachments"][0]["url"].startswith("http://a.example/")
    left = [value for value in contextvars.copy_context().values() if isinstance(value, links.AttachmentLinks)]
    assert left == []
    # The next request's URLs are its own.
    response = await records_api.get(f"{RECORDS}/{record_id}", headers=records_owner.headers)
    assert response.json()["attachments"][0]["url"].startswith("http://testserver/")
    assert body["id"] == response.json()["attachments"][0]["id"]


async def test_a_deactivated_owners_urls_are_refused(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    # `records_owner` registered first: the administrator; `records_stranger` is a plain user.
    body = await uploaded(records_stack, records_api, records_stranger)
    assert (await records_api.get(body["url"])).status_code == 200
    admin = records_stack.clients["user"]

    async def set_active(active: bool) -> None:
        path = f"/api/v1/admin/users/{records_stranger.id}"
        response = await admin.patch(path, json={"is_active": active}, headers=records_owner.headers)
        assert response.status_code == 200, response.text

    await set_active(False)
    for url in (body["url"], body["thumbnail_url"]):
        response = await records_api.get(url)
        assert assert_error(response, 404, "not_found") == links.NOT_VALID  # like any invalid link
    # With nothing cached (a Redis restart, the cache's TTL), the database still says so.
    await records_stack.redis.delete(standing_key(records_stranger.id))
    assert_error(await records_api.get(body["url"]), 404, "not_found")
    assert await records_stack.redis.get(standing_key(records_stranger.id)) == "0:user"

    await set_active(True)
    assert (await records_api.get(body["url"])).content == PNG


async def test_urls_stop_working_when_the_record_is_deleted_or_the_attachment_removed(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    kept_then_removed = await uploaded(records_stack, records_api, records_owner)
    record = await records_stack.create(records_api, records_owner)
    body = (await upload(records_api, records_owner, record["id"])).json()
    assert (await records_api.get(body["url"])).status_code == 200

    response = await records_api.delete(f"{RECORDS}/{record['id']}", headers=records_owner.headers)
    assert response.status_code == 204
    for url in (body["url"], body["thumbnail_url"]):
        assert_error(await records_api.get(url), 404, "not_found")

    response = await records_api.delete(f"/api/v1/attachments/{kept_then_removed['id']}", headers=records_owner.headers)
    assert response.status_code == 204
    assert_error(await records_api.get(kept_then_removed["url"]), 404, "not_found")


def max_age(response: httpx.Response) -> int:
    """The max-age a signed link's response allows: it counts down with the clock."""
    found = re.fullmatch(r"private, max-age=(\d+)", response.headers["cache-control"])
    assert found, response.headers["cache-control"]
    return int(found.group(1))


async def test_if_none_match_answers_304_on_both_routes(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    body = await uploaded(records_stack, records_api, records_owner)
    bearer = f"/api/v1/attachments/{body['id']}"
    routes = {
        "signed": (body["url"], {}),
        "signed thumb": (body["thumbnail_url"], {}),
        "bearer": (bearer, records_owner.headers),
        "bearer thumb": (f"{bearer}?thumb=1", records_owner.headers),
    }
    for name, (url, headers) in routes.items():
        first = await records_api.get(url, headers=headers)
        assert first.status_code == 200, name
        etag = first.headers["etag"]
        assert re.fullmatch(r'"[0-9a-f]{64}"', etag), name
        if name.startswith("bearer"):
            assert first.headers["cache-control"] == "private, no-cache", name
        else:
            assert first.headers["cache-control"].startswith("private, max-age="), name
        for presented in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
            again = await records_api.get(url, headers={**headers, "If-None-Match": presented})
            assert again.status_code == 304, (name, presented)
            assert again.content == b""
            assert again.headers["etag"] == etag
            if name.startswith("bearer"):
                assert again.headers["cache-control"] == "private, no-cache", (name, presented)
            else:  # the signed link's max-age counts down to its expiry: a second may pass
                assert max_age(first) - max_age(again) in (0, 1), (name, presented)
        changed = await records_api.get(url, headers={**headers, "If-None-Match": '"0000"'})
        assert changed.status_code == 200 and changed.content == first.content, name
    # A 304 is no way around the checks: a stranger's bearer request is still a 404.
    stranger = await records_stack.account("stranger")
    response = await records_api.get(bearer, headers={**stranger.headers, "If-None-Match": "*"})
    assert_error(response, 404, "not_found")


async def test_an_upload_answers_the_records_new_version_and_the_feed_shows_it(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner)
    feed = "/api/v1/sync/changes"
    cursor = (await records_api.get(feed, headers=records_owner.headers)).json()["cursor"]

    response = await upload(records_api, records_owner, record["id"])
    body = response.json()
    assert body["record_version"] == record["version"] + 1 == 2
    assert response.headers["etag"] == '"2"'
    current = await records_api.get(f"{RECORDS}/{record['id']}", headers=records_owner.headers)
    assert current.headers["etag"] == response.headers["etag"]  # the same form as the records routes

    page = (await records_api.get(feed, params={"since": cursor}, headers=records_owner.headers)).json()
    (change,) = page["changes"]
    assert change["id"] == record["id"] and change["version"] == 2
    assert [a["id"] for a in change["attachments"]] == [body["id"]]
    assert (await records_api.get(change["attachments"][0]["url"])).content == PNG
    cursor = page["cursor"]

    # An edit based on the upload's version goes through.
    response = await records_api.patch(
        f"{RECORDS}/{record['id']}",
        json={"title": "with a photo"},
        headers={**records_owner.headers, "If-Match": '"2"'},
    )
    assert response.status_code == 200, response.text
    cursor = (await records_api.get(feed, params={"since": cursor}, headers=records_owner.headers)).json()["cursor"]

    response = await records_api.delete(f"/api/v1/attachments/{body['id']}", headers=records_owner.headers)
    assert response.status_code == 204
    page = (await records_api.get(feed, params={"since": cursor}, headers=records_owner.headers)).json()
    (change,) = page["changes"]
    assert change["id"] == record["id"] and change["version"] == 4
    assert change["attachments"] == []


async def test_attachment_urls_use_the_answering_ports_base_url(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_port: str, records_owner: Account
) -> None:
    settings = service_state(records_stack.apps[records_port]).settings
    record = await records_stack.create(records_api, records_owner)
    await upload(records_api, records_owner, record["id"])
    path = f"{RECORDS}/{record['id']}"

    async def url(headers: dict[str, str] | None = None) -> str:
        response = await records_api.get(path, headers={**records_owner.headers, **(headers or {})})
        return str(response.json()["attachments"][0]["url"])

    proxy_headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "jilu.example"}
    assert (await url()).startswith("http://testserver/api/v1/files/")
    assert (await url({"Host": "phone.lan:8002"})).startswith("http://phone.lan:8002/api/v1/files/")
    # From a peer that is not a trusted proxy, forwarded headers are not believed...
    assert (await url(proxy_headers)).startswith("http://testserver/api/v1/files/")
    # ...from a trusted one they are (the in-process client's peer is 127.0.0.1).
    settings.trusted_proxies = ["127.0.0.1/32"]
    assert (await url(proxy_headers)).startswith("https://jilu.example/api/v1/files/")
    # A proxy that appends: its own value is the last; the first is what the client sent.
    appended = {"X-Forwarded-Proto": "http, https", "X-Forwarded-Host": "evil.example, jilu.example"}
    assert (await url(appended)).startswith("https://jilu.example/api/v1/files/")
    # A Host that is no host name is not echoed into a link.
    settings.trusted_proxies = []
    assert (await url({"Host": "evil.example/x?"})).startswith(f"http://127.0.0.1:{settings.port_of(records_port)}/")
    # A configured base URL wins, for this port only.
    setattr(settings, f"public_{records_port}_url", "https://api.jilu.example")
    signed = await url(proxy_headers)
    assert signed.startswith("https://api.jilu.example/api/v1/files/")
    response = await records_api.get(signed.replace("https://api.jilu.example", ""))
    assert response.content == PNG


def test_public_url_settings_are_validated() -> None:
    build = JiluSettings
    assert build(_env_file=None, public_web_url="https://Jilu.Example/").public_web_url == "https://jilu.example"  # type: ignore[call-arg]
    assert build(_env_file=None, public_mobile_url="http://10.0.0.2:8002").public_mobile_url == "http://10.0.0.2:8002"  # type: ignore[call-arg]
    assert build(_env_file=None).public_web_url == ""  # type: ignore[call-arg]
    for bad in (
        "ftp://jilu.example",
        "jilu.example",
        "https://jilu.example/app",
        "https://jilu.example?x=1",
        "https://jilu.example#top",
        "https://user:pw@jilu.example",
        "https://jilu.example:99999",
        "https://",
    ):
        with pytest.raises(ValueError, match="public_web_url"):
            build(_env_file=None, public_web_url=bad)  # type: ignore[call-arg]
    for bad_lifetime in (0, -5, 8 * 24 * 3600):
        with pytest.raises(ValueError, match="attachment_url_seconds"):
            build(_env_file=None, attachment_url_seconds=bad_lifetime)  # type: ignore[call-arg]
