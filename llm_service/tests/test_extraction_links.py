"""The link engine against real HTTP servers on 127.0.0.1 (http.server in threads, so a page
can lie about its length, stream without end or trickle): pages in English and Chinese,
redirects through the SSRF guard, size caps, the deadline, types, and preview images."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from PIL import Image

from llm_service.app.extraction.links import (
    MAX_TEXT_CHARS,
    NOT_A_PAGE,
    TOO_MANY_REDIRECTS,
    LinkFetcher,
    decode_html,
    extract_html,
)
from llm_service.app.extraction.results import Extracted, ExtractionFailed
from tests.support import free_port, wait_until

CAP = 256 * 1024  # the test fetcher's max_bytes, so a cut-off body is quick to reach
WRITER_SECONDS = 5.0  # an endless body ends here at the latest, even if nobody hangs up
WRITER_BYTES = 64 * 1024 * 1024

ENGLISH_ARTICLE = (
    "Keeping a diary every evening changed how I remember the year. "
    "Each entry takes five minutes, and the small details come back when I read them later. "
    "On Sundays I look over the week and write down what I want to keep doing. "
)
ENGLISH_PAGE = f"""<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Why I keep a diary</title>
<meta property="og:site_name" content="Field Notes">
<meta property="og:image" content="/img/cover.png">
</head><body>
<nav><a href="/">Home</a> <a href="/about">About</a></nav>
<article><h1>Why I keep a diary</h1>
<p>{ENGLISH_ARTICLE}</p><p>{ENGLISH_ARTICLE}</p><p>{ENGLISH_ARTICLE}</p>
</article>
</body></html>"""

CHINESE_SENTENCE = "每天晚上写几句日记，一年以后回头看，才发现生活里的小事都值得记住。"
CHINESE_TITLE = "为什么我坚持写日记"


def chinese_page(meta: str) -> str:
    paragraphs = "".join(f"<p>{CHINESE_SENTENCE * 3}</p>" for _ in range(4))
    return f"""<!doctype html>
<html lang="zh-CN"><head>
{meta}
<title>{CHINESE_TITLE}</title>
<meta property="og:site_name" content="生活记录">
<meta name="twitter:image" content="https://img.example.cn/封面.jpg">
</head><body><article><h1>{CHINESE_TITLE}</h1>{paragraphs}</article></body></html>"""


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


PNG = png_bytes()
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.seen.append((path, {k.lower(): v for k, v in self.headers.items()}))
        route = self.server.routes.get(path)
        if route is None:
            self.send_body(404, b"no such page", "text/plain")
        else:
            route(self)

    def send_body(self, status: int, body: bytes, content_type: str | None, **headers: str) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, status: int, location: str) -> None:
        self.send_body(status, b"", "text/plain", Location=location)

    def endless(
        self, framing: str, *, first: bytes, filler: bytes, content_type: str, delay: float = 0.0, declared: int = 0
    ) -> None:
        """A body that goes on until the client hangs up (or WRITER_SECONDS pass); framed by
        chunks, by a Content-Length (`declared`), or by closing the connection."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif framing == "length":
            self.send_header("Content-Length", str(declared))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        sent, piece, deadline = 0, first, time.monotonic() + WRITER_SECONDS
        try:
            while sent < WRITER_BYTES and time.monotonic() < deadline:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece)
                sent += len(piece)
                piece = filler
                if delay:
                    time.sleep(delay)
        except OSError:
            pass  # the client hung up: what the tests want
        finally:
            self.server.sent[urlsplit(self.path).path] = sent


class Server(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 in a thread; `seen` lists (path, headers) received,
    `sent` how many body bytes each endless route wrote before it ended."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Callable[[Handler], None]] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.sent: dict[str, int] = {}
        self.port = self.server_address[1]
        self.host_port = f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.host_port}{path}"

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: the tests cut connections on purpose (size caps, deadlines)."""

    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]


def add_routes(site: Server, other: Server) -> None:
    html = "text/html; charset=utf-8"
    filler = b"<p>" + b"filler text that never ends " * 40 + b"</p>\n"
    article = ENGLISH_PAGE.split("</article>")[0].encode()
    routes: dict[str, Callable[[Handler], None]] = {
        "/en": lambda h: h.send_body(200, ENGLISH_PAGE.encode(), html),
        "/untyped": lambda h: h.send_body(200, ENGLISH_PAGE.encode(), None),
        "/zh/meta-gbk": lambda h: h.send_body(200, chinese_page('<meta charset="gbk">').encode("gbk"), "text/html"),
        "/zh/http-equiv": lambda h: h.send_body(
            200,
            chinese_page('<meta http-equiv="Content-Type" content="text/html; charset=gb2312">').encode("gb18030"),
            "text/html",
        ),
        # The header says GB18030 and the page's own meta says UTF-8: the header wins.
        "/zh/http-charset": lambda h: h.send_body(
            200, chinese_page('<meta charset="utf-8">').encode("gb18030"), "text/html; charset=GB18030"
        ),
        "/zh/utf8": lambda h: h.send_body(200, chinese_page("").encode(), "text/html"),
        "/r/301": lambda h: h.redirect(301, "/r/302"),
        "/r/302": lambda h: h.redirect(302, site.url("/en")),
        "/r/other": lambda h: h.redirect(302, other.url("/secret")),
        "/r/metadata": lambda h: h.redirect(302, "http://169.254.169.254/latest/meta-data/"),
        "/r/localhost": lambda h: h.redirect(307, f"http://localhost:{site.port}/en"),
        "/r/file": lambda h: h.redirect(302, "file:///etc/passwd"),
        "/r/credentials": lambda h: h.redirect(302, f"http://user:secret@{site.host_port}/en"),
        "/r/nowhere": lambda h: h.redirect(302, ""),
        "/r/loop": lambda h: h.redirect(302, "/r/loop"),
        "/r/image": lambda h: h.redirect(301, "/img/cover.png"),
        "/r/image-metadata": lambda h: h.redirect(302, "http://169.254.169.254/latest/meta-data/x.png"),
        "/big/lying-length": lambda h: h.endless(
            "length", first=article, filler=filler, content_type=html, declared=10**11
        ),
        "/big/close-delimited": lambda h: h.endless("close", first=article, filler=filler, content_type=html),
        "/big/chunked": lambda h: h.endless("chunked", first=article, filler=filler, content_type=html),
        "/big/slow": lambda h: h.endless(
            "chunked", first=article, filler=b"<p>slow</p>", content_type=html, delay=0.05
        ),
        # Claims 300 bytes, then keeps sending: only the 300 announced are ever read.
        "/big/understated": lambda h: h.endless(
            "length", first=article, filler=filler, content_type=html, declared=300
        ),
        "/set-cookie": lambda h: h.send_body(200, ENGLISH_PAGE.encode(), html, Set_Cookie="session=abc; Path=/"),
        "/data.json": lambda h: h.send_body(200, b'{"a": 1}', "application/json"),
        "/doc.pdf": lambda h: h.send_body(200, PDF, "application/pdf"),
        "/download": lambda h: h.send_body(200, PDF, "application/octet-stream"),
        "/big.pdf": lambda h: h.endless(
            "length", first=PDF, filler=b"0" * 4096, content_type="application/pdf", declared=CAP * 10
        ),
        "/big-unnamed.pdf": lambda h: h.endless("chunked", first=PDF, filler=b"0" * 4096, content_type=""),
        "/missing": lambda h: h.send_body(404, b"gone", "text/html"),
        "/forbidden": lambda h: h.send_body(403, b"no", "text/html"),
        "/unwell": lambda h: h.send_body(503, b"busy", "text/html"),
        "/busy": lambda h: h.send_body(429, b"slow down", "text/html", Retry_After="1"),
        "/img/cover.png": lambda h: h.send_body(200, PNG, "image/png"),
        "/img/octet.png": lambda h: h.send_body(200, PNG, "application/octet-stream"),
        "/img/fake.png": lambda h: h.send_body(200, ENGLISH_PAGE.encode(), "image/png"),
        "/img/declared-huge.png": lambda h: h.endless(
            "length", first=PNG, filler=b"\0" * 4096, content_type="image/png", declared=CAP + 1
        ),
        "/img/endless.png": lambda h: h.endless("chunked", first=PNG, filler=b"\0" * 4096, content_type="image/png"),
    }
    site.routes.update(routes)
    other.routes["/secret"] = lambda h: h.send_body(200, b"internal", "text/plain")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    """The site under test and another server (a port nobody allowed) beside it."""
    site, other = Server(), Server()
    add_routes(site, other)
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True) for s in (site, other)
    ]
    for thread in threads:
        thread.start()
    try:
        yield site, other
    finally:
        for s in (site, other):
            s.shutdown()
            s.server_close()


@pytest.fixture
def site(servers: tuple[Server, Server]) -> Server:
    servers[0].seen.clear()
    servers[0].sent.clear()
    return servers[0]


@pytest.fixture
def other(servers: tuple[Server, Server]) -> Server:
    servers[1].seen.clear()
    return servers[1]


@pytest.fixture
async def fetcher(site: Server) -> AsyncIterator[LinkFetcher]:
    """Allowed to reach exactly the site's `host:port` (the admin's allow-list)."""
    async with LinkFetcher([site.host_port], max_bytes=CAP, timeout=3.0, max_redirects=5) as made:
        yield made


async def extracted(fetcher: LinkFetcher, url: str) -> Extracted:
    """The link's result, which for anything but a PDF comes without bytes."""
    result, pdf = await fetcher.extract_link(url)
    assert pdf is None
    return result


# -- pages ----------------------------------------------------------------------------


async def test_english_page(fetcher: LinkFetcher, site: Server) -> None:
    result = await extracted(fetcher, site.url("/en"))

    assert (result.status, result.engine) == ("done", "trafilatura")
    assert ENGLISH_ARTICLE.strip() in result.text
    assert "Home" not in result.text  # the navigation is not the article
    assert result.details["title"] == "Why I keep a diary"
    assert result.details["site_name"] == "Field Notes"
    assert result.details["final_url"] == site.url("/en")
    assert result.details["preview_image_url"] == site.url("/img/cover.png")
    assert "truncated" not in result.details
    headers = site.seen[0][1]
    assert "Jilu" in headers["user-agent"]
    assert "cookie" not in headers


@pytest.mark.parametrize("path", ["/zh/meta-gbk", "/zh/http-equiv", "/zh/http-charset", "/zh/utf8"])
async def test_chinese_pages_in_any_declared_encoding(fetcher: LinkFetcher, site: Server, path: str) -> None:
    result = await extracted(fetcher, site.url(path))

    assert result.status == "done"
    assert CHINESE_SENTENCE in result.text
    assert "\ufffd" not in result.text
    assert result.details["title"] == CHINESE_TITLE
    assert result.details["site_name"] == "生活记录"
    assert result.details["preview_image_url"] == "https://img.example.cn/%E5%B0%81%E9%9D%A2.jpg"


async def test_a_page_without_a_content_type_is_read_when_its_bytes_are_html(
    fetcher: LinkFetcher, site: Server
) -> None:
    result = await extracted(fetcher, site.url("/untyped"))
    assert result.status == "done"
    assert ENGLISH_ARTICLE.strip() in result.text


async def test_no_cookie_is_kept_between_fetches(fetcher: LinkFetcher, site: Server) -> None:
    await fetcher.fetch_page(site.url("/set-cookie"))
    await fetcher.fetch_page(site.url("/en"))
    assert [path for path, _ in site.seen] == ["/set-cookie", "/en"]
    assert "cookie" not in site.seen[1][1]


# -- redirects ------------------------------------------------------------------------


async def test_a_redirect_chain_is_followed(fetcher: LinkFetcher, site: Server) -> None:
    result = await extracted(fetcher, site.url("/r/301"))

    assert result.status == "done"
    assert result.details["final_url"] == site.url("/en")
    assert result.details["preview_image_url"] == site.url("/img/cover.png")
    assert site.paths() == ["/r/301", "/r/302", "/en"]


async def test_a_redirect_to_a_port_nobody_allowed_is_refused(
    fetcher: LinkFetcher, site: Server, other: Server
) -> None:
    result = await extracted(fetcher, site.url("/r/other"))

    assert (result.status, result.engine) == ("skipped", "link")
    assert result.reason == "the link's address is not allowed"
    assert other.seen == []


async def test_a_redirect_to_localhost_by_name_is_refused(fetcher: LinkFetcher, site: Server) -> None:
    # The allow-list names 127.0.0.1:port; "localhost" resolves to a loopback address it does not list.
    result = await extracted(fetcher, site.url("/r/localhost"))
    assert result.reason == "the link's address is not allowed"
    assert site.paths() == ["/r/localhost"]


async def test_a_redirect_to_the_metadata_address_is_refused_without_connecting(
    fetcher: LinkFetcher, site: Server
) -> None:
    started = time.monotonic()
    result = await extracted(fetcher, site.url("/r/metadata"))

    assert result.status == "skipped"
    assert result.reason == "the link's address is not allowed"
    # An attempt to connect to 169.254.169.254 would hang here until the connect timeout.
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("path", ["/r/file", "/r/credentials", "/r/nowhere"])
async def test_a_redirect_to_an_address_that_is_not_a_plain_web_address_is_refused(
    fetcher: LinkFetcher, site: Server, path: str
) -> None:
    result = await extracted(fetcher, site.url(path))
    assert result.reason == "the page redirected to an address Jilu cannot open"
    assert site.paths() == [path]


async def test_a_redirect_loop_ends_at_the_redirect_limit(fetcher: LinkFetcher, site: Server) -> None:
    result = await extracted(fetcher, site.url("/r/loop"))

    assert (result.status, result.reason) == ("skipped", TOO_MANY_REDIRECTS)
    assert site.paths() == ["/r/loop"] * (fetcher.max_redirects + 1)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://user:secret@{site}/en",
        "http:///no-host",
        "not a url at all",
    ],
)
async def test_a_link_that_is_not_a_plain_web_address_is_skipped_without_a_request(
    fetcher: LinkFetcher, site: Server, url: str
) -> None:
    result = await extracted(fetcher, url.format(site=site.host_port))
    assert (result.status, result.reason) == ("skipped", "the link is not a web address Jilu can open")
    assert site.seen == []


# -- size and time --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/big/lying-length", "/big/close-delimited", "/big/chunked"])
async def test_an_endless_html_body_is_cut_at_the_cap_and_read(fetcher: LinkFetcher, site: Server, path: str) -> None:
    started = time.monotonic()
    page = await fetcher.fetch_page(site.url(path))

    assert (page.content_type, page.truncated, len(page.body)) == ("text/html", True, CAP)
    result = await extracted(fetcher, site.url(path))
    assert result.status == "done"
    assert result.details["truncated"] is True
    assert ENGLISH_ARTICLE.strip() in result.text
    assert time.monotonic() - started < 2.0
    # The client hung up: the server's writer stopped long before its own limit.
    assert wait_until(lambda: path in site.sent, timeout=WRITER_SECONDS + 1)
    assert site.sent[path] < WRITER_BYTES // 4


async def test_a_body_longer_than_its_content_length_is_read_only_as_far_as_announced(
    fetcher: LinkFetcher, site: Server
) -> None:
    page = await fetcher.fetch_page(site.url("/big/understated"))
    assert (len(page.body), page.truncated) == (300, False)


async def test_a_slow_endless_body_ends_at_the_deadline(site: Server) -> None:
    async with LinkFetcher([site.host_port], max_bytes=CAP, timeout=0.5) as fetcher:
        started = time.monotonic()
        with pytest.raises(ExtractionFailed) as caught:
            await fetcher.extract_link(site.url("/big/slow"))
        elapsed = time.monotonic() - started

    assert caught.value.reason == "the page took too long"
    assert 0.4 < elapsed < 1.5


# -- types and statuses ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/img/cover.png", "/data.json"])
async def test_what_is_neither_a_web_page_nor_a_pdf_is_skipped(fetcher: LinkFetcher, site: Server, path: str) -> None:
    result = await extracted(fetcher, site.url(path))
    assert (result.status, result.engine, result.reason) == ("skipped", "link", NOT_A_PAGE)


@pytest.mark.parametrize("path", ["/doc.pdf", "/download"])
async def test_a_pdf_comes_back_as_bytes_for_the_pdf_engine(fetcher: LinkFetcher, site: Server, path: str) -> None:
    page = await fetcher.fetch_page(site.url(path))
    assert (page.content_type, page.body, page.final_url) == ("application/pdf", PDF, site.url(path))

    result, pdf = await fetcher.extract_link(site.url(path))
    assert pdf == PDF
    assert (result.status, result.engine, result.details) == ("done", "link", {"final_url": site.url(path)})


@pytest.mark.parametrize("path", ["/big.pdf", "/big-unnamed.pdf"])
async def test_a_pdf_over_the_cap_is_skipped(fetcher: LinkFetcher, site: Server, path: str) -> None:
    result = await extracted(fetcher, site.url(path))
    assert (result.status, result.reason) == ("skipped", "the PDF is larger than 0.25 MB")


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/forbidden", 403)])
async def test_a_client_error_is_skipped(fetcher: LinkFetcher, site: Server, path: str, status: int) -> None:
    result = await extracted(fetcher, site.url(path))
    assert (result.status, result.reason) == ("skipped", f"the page answered {status}")


@pytest.mark.parametrize(("path", "status"), [("/unwell", 503), ("/busy", 429)])
async def test_a_server_in_trouble_fails_for_a_retry(
    fetcher: LinkFetcher, site: Server, path: str, status: int
) -> None:
    with pytest.raises(ExtractionFailed) as caught:
        await fetcher.extract_link(site.url(path))
    assert caught.value.reason == f"the page answered {status}"


async def test_an_allowed_port_where_nobody_listens_fails_for_a_retry() -> None:
    closed = f"127.0.0.1:{free_port()}"
    async with LinkFetcher([closed]) as fetcher:
        with pytest.raises(ExtractionFailed) as caught:
            await fetcher.fetch_page(f"http://{closed}/")
    assert caught.value.reason == "the page could not be reached"


# -- preview images -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/img/cover.png", "/img/octet.png", "/r/image"])
async def test_a_preview_image_is_fetched(fetcher: LinkFetcher, site: Server, path: str) -> None:
    assert await fetcher.fetch_image(site.url(path)) == (PNG, "image/png")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/data.json", "the image is not a JPEG, PNG, WebP or GIF"),
        ("/img/fake.png", "the image is not a JPEG, PNG, WebP or GIF"),
        ("/img/declared-huge.png", "the image is larger than 0.25 MB"),
        ("/img/endless.png", "the image is larger than 0.25 MB"),
        ("/r/image-metadata", "the image's address is not allowed"),
        ("/missing", "the image answered 404"),
    ],
)
async def test_a_preview_image_is_refused(fetcher: LinkFetcher, site: Server, path: str, reason: str) -> None:
    with pytest.raises(ExtractionFailed) as caught:
        await fetcher.fetch_image(site.url(path))
    assert caught.value.reason == reason


# -- reading HTML without the network -------------------------------------------------


def test_decoding_prefers_a_byte_order_mark_then_the_header_then_the_meta_then_utf8() -> None:
    text = "中文页面"
    assert decode_html(b"\xef\xbb\xbf" + text.encode(), "gbk") == text
    assert decode_html(f'<meta charset="utf-8">{text}'.encode("gbk"), "GBK").endswith(text)
    assert decode_html(f"<meta charset='gb2312'>{text}".encode("gbk")).endswith(text)
    assert decode_html(text.encode(), "no-such-charset") == text
    assert decode_html(text.encode(), "base64") == text  # not a text encoding: ignored
    assert decode_html(b"caf\xe9", "iso-8859-1") == "café"
    assert decode_html(f'<?xml version="1.0" encoding="gb2312"?><p>{text}</p>'.encode("gbk")).endswith(f"{text}</p>")


def test_an_xhtml_page_with_an_xml_declaration_is_read() -> None:
    page = chinese_page("").replace("<!doctype html>", '<?xml version="1.0" encoding="gb2312"?>')
    result = extract_html(page.encode("gbk"), "https://example.cn/a")

    assert result.details["title"] == CHINESE_TITLE
    assert CHINESE_SENTENCE in result.text


def test_a_page_with_no_metadata_falls_back_to_its_title_and_host() -> None:
    page = "<html><head><title> Plain\n page </title></head><body><p>Short.</p></body></html>"
    result = extract_html(page.encode(), "https://www.example.org/a")

    assert result.details["title"] == "Plain page"
    assert result.details["site_name"] == "example.org"
    assert "preview_image_url" not in result.details


def test_a_preview_image_that_is_not_a_web_address_is_left_out() -> None:
    page = (
        '<html><head><meta property="og:image" content="javascript:alert(1)">'
        '<meta name="twitter:image" content="//cdn.example.org/p.jpg"></head><body><p>x</p></body></html>'
    )
    result = extract_html(page.encode(), "https://example.org/a")
    assert result.details["preview_image_url"] == "https://cdn.example.org/p.jpg"


def test_the_text_is_cut_at_its_limit() -> None:
    # Each paragraph its own: trafilatura drops a paragraph that repeats the one before it.
    sentence = "A sentence that keeps the article going. " * 50
    paragraphs = "".join(f"<p>Part {i}. {sentence}</p>" for i in range(MAX_TEXT_CHARS // 2000 + 5))
    page = f"<html><body><article>{paragraphs}</article></body></html>"
    result = extract_html(page.encode(), "https://example.org/long")

    assert len(result.text) == MAX_TEXT_CHARS
    assert result.details["truncated"] is True
