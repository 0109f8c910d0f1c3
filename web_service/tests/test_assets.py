"""The web app's files on the web port (Flask behind FastAPI): versioned immutable assets, the
entry points with `__ASSETS__` filled in, gzip, ETags, and the security headers on every
answer Flask gives, the share page's stricter ones included."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import WEB_APP_SECURITY_HEADERS, app_client, assert_error
from web_service.app.config import WebSettings
from web_service.app.main import create_app as create_web_app
from web_service.app.web import STATIC_DIR
from web_service.app.web.assets import StaticBundle
from web_service.tests.support import WebStack, bearer

SHARE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
IMMUTABLE = "public, max-age=31536000, immutable"
PNG = bytes.fromhex(  # a 1x1 image
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201e2265b9d0000000049454e44ae426082"
)

FILES: dict[str, bytes] = {
    "index.html": b'<!doctype html><link rel="stylesheet" href="__ASSETS__/styles.css">'
    b'<script type="module" src="__ASSETS__/app.js"></script><body data-assets="__ASSETS__"></body>',
    "app.js": b"import { h } from './lib/h.js';\n" + b"console.log('\xe8\xae\xb0\xe5\xbd\x95 jilu');\n" * 200,
    "lib/h.js": b"export const h = (tag) => tag;\n",
    "styles.css": b"body { color: #1f2328; }\n" * 100,
    "share.css": b"main { max-width: 44rem; }\n",
    "sw.js": b"const ASSETS = '__ASSETS__'; const VERSION = '__VERSION__';\n",
    "manifest.webmanifest": b'{"name": "Jilu", "icons": [{"src": "__ASSETS__/icons/icon.svg"}]}',
    "icons/icon.svg": b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><rect width="1" height="1"/></svg>',
    "icons/icon-192.png": PNG,
    "data/strings.json": b'{"hello": "\xe4\xbd\xa0\xe5\xa5\xbd"}',
    "robots.txt": b"User-agent: *\nDisallow: /s/\n",
    "vendor/README.md": b"# Vendored libraries\n",
    "vendor/licenses/preact-LICENSE": b"The MIT License (MIT)\n",
    ".hidden-notes": b"not for the browser",
}


def expected_version(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in files if not p.startswith(".")):
        digest.update(path.encode())
        digest.update(files[path])
    return digest.hexdigest()[:12]


VERSION = expected_version(FILES)
ASSETS = f"/assets/{VERSION}"


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite only (a copy of the migrated template): nothing here depends on the database."""
    path = tmp_path / "jilu.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    root = tmp_path / "static"
    for path, body in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(body)
    return root


@pytest.fixture
async def client(
    make_settings: Callable[..., Any], migrated_database_url: str, static_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_web_app(make_settings(WebSettings, database_url=migrated_database_url), static_dir=static_dir)
    async with app_client(app) as web:
        yield web


async def raw_get(client: httpx.AsyncClient, url: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (not decompressed)."""
    async with client.stream("GET", url, headers=headers) as response:
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


def assert_app_headers(response: httpx.Response) -> None:
    for name, value in WEB_APP_SECURITY_HEADERS.items():
        assert response.headers[name] == value, name


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("lib/h.js", "text/javascript; charset=utf-8"),
        ("styles.css", "text/css; charset=utf-8"),
        ("icons/icon.svg", "image/svg+xml"),
        ("icons/icon-192.png", "image/png"),
        ("manifest.webmanifest", "application/manifest+json"),
        ("data/strings.json", "application/json"),
        ("robots.txt", "text/plain; charset=utf-8"),
        ("vendor/README.md", "text/plain; charset=utf-8"),
        ("vendor/licenses/preact-LICENSE", "text/plain; charset=utf-8"),
    ],
)
async def test_every_file_is_served_at_its_versioned_url_for_a_year(
    client: httpx.AsyncClient, path: str, content_type: str
) -> None:
    response, body = await raw_get(client, f"{ASSETS}/{path}", **{"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert body == FILES[path]  # as stored: the placeholders are only filled in the entry points
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == IMMUTABLE
    assert response.headers["etag"].startswith('W/"')
    assert "content-encoding" not in response.headers
    assert_app_headers(response)


@pytest.mark.parametrize(
    "url",
    [
        "/assets/000000000000/app.js",  # a release that is gone
        f"{ASSETS}/missing.js",
        f"{ASSETS}/.hidden-notes",
        f"{ASSETS}/",
        "/app.js",  # only under the versioned prefix
    ],
)
async def test_another_version_or_an_unknown_file_is_a_json_404_with_the_headers(
    client: httpx.AsyncClient, url: str
) -> None:
    assert_error(await client.get(url), 404, "not_found", WEB_APP_SECURITY_HEADERS)


@pytest.mark.parametrize("path", ["/", "/index.html"])
async def test_the_page_names_the_current_assets_and_is_revalidated(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "__ASSETS__" not in response.text
    assert response.text == FILES["index.html"].decode().replace("__ASSETS__", ASSETS)
    assert_app_headers(response)
    for url in re.findall(r'(?:href|src)="([^"]+)"', response.text):
        assert (await client.get(url)).status_code == 200, url


async def test_the_service_worker_and_the_manifest(client: httpx.AsyncClient) -> None:
    worker = await client.get("/sw.js")
    assert worker.status_code == 200
    assert worker.text == f"const ASSETS = '{ASSETS}'; const VERSION = '{VERSION}';\n"
    assert worker.headers["content-type"] == "text/javascript; charset=utf-8"
    assert worker.headers["cache-control"] == "no-cache"
    assert worker.headers["service-worker-allowed"] == "/"
    assert_app_headers(worker)

    manifest = await client.get("/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"] == "application/manifest+json"
    assert manifest.headers["cache-control"] == "no-cache"
    assert manifest.json()["icons"][0]["src"] == f"{ASSETS}/icons/icon.svg"


async def test_the_favicon_is_the_svg_icon(client: httpx.AsyncClient) -> None:
    response = await client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert response.content == FILES["icons/icon.svg"]


@pytest.mark.parametrize("url", [f"{ASSETS}/app.js", f"{ASSETS}/styles.css", "/"])
async def test_text_is_gzipped_when_the_client_takes_it(client: httpx.AsyncClient, url: str) -> None:
    plain, plain_body = await raw_get(client, url, **{"Accept-Encoding": "identity"})
    packed, packed_body = await raw_get(client, url, **{"Accept-Encoding": "gzip, br"})
    refused, refused_body = await raw_get(client, url, **{"Accept-Encoding": "gzip;q=0, deflate"})
    for response in (plain, packed, refused):
        assert response.status_code == 200
        assert response.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in plain.headers and "content-encoding" not in refused.headers
    assert refused_body == plain_body
    assert packed.headers["content-encoding"] == "gzip"
    assert gzip.decompress(packed_body) == plain_body
    assert int(packed.headers["content-length"]) == len(packed_body) < len(plain_body)
    assert packed.headers["etag"] == plain.headers["etag"]


async def test_text_that_gzip_would_not_shrink_is_sent_plain(client: httpx.AsyncClient) -> None:
    response, body = await raw_get(client, "/sw.js", **{"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert body.startswith(b"const ASSETS")


async def test_binary_files_are_sent_as_they_are(client: httpx.AsyncClient) -> None:
    response, body = await raw_get(client, f"{ASSETS}/icons/icon-192.png", **{"Accept-Encoding": "gzip"})
    assert body == PNG
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers


@pytest.mark.parametrize("url", [f"{ASSETS}/app.js", f"{ASSETS}/icons/icon-192.png", "/"])
async def test_a_client_with_the_current_copy_gets_304(client: httpx.AsyncClient, url: str) -> None:
    first = await client.get(url)
    etag = first.headers["etag"]
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == first.headers["cache-control"]
    strong = await client.get(url, headers={"If-None-Match": f'"other", {etag.removeprefix("W/")}'})
    assert strong.status_code == 304
    assert (await client.get(url, headers={"If-None-Match": '"other"'})).status_code == 200


def test_a_new_release_is_a_new_version(tmp_path: Path) -> None:
    root = tmp_path / "static"
    root.mkdir()
    (root / "app.js").write_bytes(b"one")
    first = StaticBundle(root).version
    (root / "app.js").write_bytes(b"two")
    second = StaticBundle(root).version
    (root / "app.js").rename(root / "main.js")
    third = StaticBundle(root).version
    assert len({first, second, third}) == 3
    assert all(re.fullmatch(r"[0-9a-f]{12}", version) for version in (first, second, third))


async def test_the_share_page_uses_the_share_stylesheet_under_its_own_csp(web_stack: WebStack) -> None:
    """With the real static dir: the page links `share.css` by its versioned URL, allows no
    script and no inline style, and that stylesheet is served."""
    await web_stack.register("alice")
    token = await web_stack.token("alice")
    browser = await web_stack.browser()
    web = browser.client
    record = await web.post("/api/v1/records", json={"content": "**Shared** text"}, headers=bearer(token))
    assert record.status_code == 201, record.text
    link = await web.post(f"/api/v1/records/{record.json()['id']}/share", headers=bearer(token))
    assert link.status_code in (200, 201), link.text

    page = await web.get(link.json()["url"])
    assert page.status_code == 200, page.text
    assert page.headers["content-security-policy"] == SHARE_CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<style" not in page.text and "<script" not in page.text
    assert '<link rel="icon" href="/favicon.ico">' in page.text
    (stylesheet,) = re.findall(r'<link rel="stylesheet" href="([^"]+)">', page.text)
    assert re.fullmatch(r"/assets/[0-9a-f]{12}/share\.css", stylesheet)
    css = await web.get(stylesheet)
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.text == (STATIC_DIR / "share.css").read_text()
    assert (await web.get("/favicon.ico")).status_code == 200

    missing = await web.get("/s/no-such-link")
    assert missing.status_code == 404
    assert missing.headers["content-security-policy"] == SHARE_CSP
    assert stylesheet in missing.text
