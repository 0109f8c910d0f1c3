"""The link engine: fetch a link record's URL through the SSRF guard and read the page.

One `LinkFetcher` per process (made in the lifespan, closed there) owns an httpx client on
`GuardedTransport`, the same guard as the LLM providers': every address a host resolves to is
checked when the connection is made, and only an admin's `host:port` allow-list opens private
ones. Redirects are followed here, hop by hop, each new URL checked again (http or https, no
user name or password) and then connected to through the guard, up to `max_redirects`.

    fetcher = LinkFetcher(settings.link_allowed_hosts)
    page, pdf = await fetcher.extract_link(url)
    if pdf is not None:  # a PDF: read `pdf` with the PDF engine, merge over `page.details`
        ...

- `fetch_page(url) -> FetchedPage`: the final URL, the type (`text/html` or
  `application/pdf`) and the body bytes. Any other type is `LinkSkipped`.
- `extract_html(body, url, charset=)`: pure and CPU-bound (run it in a thread; `extract_link`
  does): trafilatura's readable text, title and site name, and the preview image URL.
- `extract_link(url) -> (Extracted, bytes | None)`: both, as the worker wants them: a web
  page read (done) or a link with nothing to read (skipped), with None; or, for a PDF, an
  `Extracted` carrying only `details["final_url"]` and the PDF's bytes.
- `fetch_image(url) -> (bytes, type)`: a preview image, JPEG, PNG, WebP or GIF by its bytes.

Limits. The body is counted as it streams (after decompression), whatever Content-Length
says, and the whole fetch, every hop and the body, has one deadline (`timeout`). An HTML body
past `max_bytes` is cut there and what was read is used (`details["truncated"]`): the readable
part of a page comes first and lxml parses a cut page fine, while failing would lose pages
heavy with inline scripts. A PDF or an image past its cap is refused, as a cut one is useless.

Retry or skip. `ExtractionFailed` (a later attempt may mend it): the deadline or a timeout,
a connection or TLS error, a host that does not resolve (DNS may be down), a 5xx, 408, 425
or 429. `LinkSkipped`, stored as `skipped` (not retried; the user can re-run it): an address
the guard refuses (the allow-list changes only by an admin's hand), a URL that is not http(s)
or carries credentials, too many redirects (a loop does not mend), any other 4xx ("the page
answered 404"), a type that is not a web page or a PDF, a PDF over its cap. `fetch_image`
raises `ExtractionFailed` for all of these: a missing preview is never a record's problem.

No cookies are kept (a page's cookie must never ride along on another user's fetch), and
nothing here reaches the network but the fetch itself: trafilatura is handed the HTML.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import trafilatura
from lxml.html import HtmlElement

from common.api_clients.llm.errors import ProviderRefusedAddress
from common.api_clients.llm.ssrf import HOST_DOES_NOT_RESOLVE, GuardedTransport
from common.records.attachments.sniff import HEAD_SIZE, PDF_TYPE, binary_type
from llm_service.app.extraction.results import Extracted, ExtractionFailed

MB = 1024 * 1024
ENGINE = "trafilatura"
LINK_ENGINE = "link"  # a skipped link, and the stand-in result of a linked PDF
HTML_TYPE = "text/html"
HTML_TYPES = frozenset({HTML_TYPE, "application/xhtml+xml"})
PREVIEW_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
MAX_TEXT_CHARS = 100_000
MAX_LABEL_CHARS = 300  # a title or a site name
MAX_URL_CHARS = 2048
NOT_A_PAGE = "not a web page or a PDF"
TOO_MANY_REDIRECTS = "too many redirects"
USER_AGENT = "Mozilla/5.0 (compatible; Jilu; a self-hosted notebook reading a link its user saved)"
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,application/pdf;q=0.8,*/*;q=0.1"
IMAGE_ACCEPT = "image/webp,image/png,image/jpeg,image/gif;q=0.9,*/*;q=0.1"

# Servers that do not know what they send say this (or nothing): the bytes decide.
_UNNAMED_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Answers that say the server is busy or unwell now, not that the link is wrong.
_PASSING_STATUSES = frozenset({408, 425, 429})
_IMAGE_META = ("og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src")
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
_XML_DECLARATION = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([a-zA-Z0-9_.:-]+)""")
_HTML_START = re.compile(rb"<(?:!doctype\s+html|html|head|body|title|meta)[\s>/]", re.IGNORECASE)
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Labels browsers read as a wider encoding (the WHATWG Encoding Standard): GB2312 and GBK
# pages are decoded as GB18030, Latin-1 and ASCII ones as windows-1252.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "chinese": "gb18030",
    "csgb2312": "gb18030",
    "big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}

# trafilatura logs every page it finds too short or not HTML as a warning or an error; for
# Jilu that is an empty text, not a fault to report.
for _name in ("trafilatura", "htmldate", "courlan", "justext"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class LinkSkipped(Exception):
    """The link cannot be read and another attempt will not change that: store `skipped`
    with `reason` (short, written by Jilu, safe to show)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FetchedPage:
    """What a link answered with, after its redirects. `content_type` is `text/html` (for
    `application/xhtml+xml` too) or `application/pdf`; `charset` is the HTTP header's, if
    any; `truncated` means the HTML body was cut at the fetcher's `max_bytes`."""

    final_url: str
    content_type: str
    body: bytes
    charset: str | None = None
    truncated: bool = False


@dataclass(frozen=True)
class _Subject:
    """Whose address (`link`, `image`) and what answered (`page`, `image`), for reasons."""

    owner: str
    thing: str


_LINK = _Subject("link", "page")
_IMAGE = _Subject("image", "image")
_TRANSPORT_ERRORS = (ProviderRefusedAddress, TimeoutError, httpx.HTTPError, httpx.InvalidURL)


def _failure(exc: BaseException, subject: _Subject) -> ExtractionFailed | LinkSkipped:
    """The guard's, the deadline's and httpx's errors as short, safe reasons."""
    if isinstance(exc, ProviderRefusedAddress):
        if HOST_DOES_NOT_RESOLVE in str(exc.detail):
            return ExtractionFailed(f"the {subject.owner}'s host was not found")
        return LinkSkipped(f"the {subject.owner}'s address is not allowed")
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return ExtractionFailed(f"the {subject.thing} took too long")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return LinkSkipped(f"the {subject.owner} is not a web address Jilu can open")
    return ExtractionFailed(f"the {subject.thing} could not be reached")


def _web_address(url: str | httpx.URL, reason: str) -> httpx.URL:
    """`url` without its fragment when it is http(s) with a host and no credentials, else
    `LinkSkipped(reason)`. Parsed by httpx, which makes the call, so both see one host."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        raise LinkSkipped(reason) from None
    if parsed.scheme not in ("http", "https") or not parsed.host or parsed.userinfo:
        raise LinkSkipped(reason)
    return parsed.copy_with(fragment=None)


def _check_status(status: int, subject: _Subject) -> None:
    if 200 <= status < 300:
        return
    reason = f"the {subject.thing} answered {status}"
    if status >= 500 or status in _PASSING_STATUSES:
        raise ExtractionFailed(reason)
    raise LinkSkipped(reason)


def _content_type(response: httpx.Response) -> tuple[str, str | None]:
    """(media type in lower case, charset parameter or None)."""
    media, _, params = response.headers.get("content-type", "").partition(";")
    match = _CHARSET_PARAM.search(params)
    return media.strip().lower(), match.group(1) if match else None


def _declared_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


async def _read(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """At most `cap` bytes of the body, and whether more was coming (reading stops there)."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        room = cap - len(body)
        if len(chunk) > room:
            body += chunk[:room]
            return bytes(body), True
        body += chunk
    return bytes(body), False


def _megabytes(size: int) -> str:
    return f"{size / MB:g} MB"


class LinkFetcher:
    """Fetches links and preview images through the SSRF guard; one per process.

    `allowed_hosts` is the admin's allow-list (`host:port` entries, as
    `JILU_LLM_ALLOWED_HOSTS`); `max_bytes` caps an HTML page (cut) and an image (refused);
    `max_pdf_bytes` caps a PDF (refused; default `max_bytes`: pass the upload limit to treat
    a linked PDF like an uploaded one); `timeout` is the deadline of one whole fetch.
    """

    def __init__(
        self,
        allowed_hosts: Sequence[str] = (),
        *,
        max_bytes: int = 5 * MB,
        max_pdf_bytes: int | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        max_redirects: int = 5,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_pdf_bytes = max_pdf_bytes or max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        # Not `create_http_client`: its hook would hand Jilu's request id to any web site.
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(allowed_hosts),
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
            # A jar that takes no cookie: one user's page must not set a cookie for another's.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> LinkFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @asynccontextmanager
    async def _answer(self, url: str, accept: str, subject: _Subject) -> AsyncIterator[httpx.Response]:
        """The streamed 2xx answer at the end of `url`'s redirects (each hop checked here
        and, at connect time, by the guard); any other status raises."""
        target = _web_address(url, f"the {subject.owner} is not a web address Jilu can open")
        for _ in range(self.max_redirects + 1):
            async with self._client.stream("GET", target, headers={"Accept": accept}) as response:
                if response.status_code not in _REDIRECTS:
                    _check_status(response.status_code, subject)
                    yield response
                    return
                location = response.headers.get("location", "").strip()
                reason = f"the {subject.thing} redirected to an address Jilu cannot open"
                if not location:
                    raise LinkSkipped(reason)
                try:
                    target = _web_address(response.url.join(location), reason)
                except (httpx.InvalidURL, TypeError, ValueError):
                    raise LinkSkipped(reason) from None
        raise LinkSkipped(TOO_MANY_REDIRECTS)

    async def fetch_page(self, url: str) -> FetchedPage:
        """The HTML page or the PDF at `url`. Raises `LinkSkipped` when there is nothing to
        read that another attempt would find, `ExtractionFailed` when one might."""
        try:
            async with asyncio.timeout(self.timeout), self._answer(url, PAGE_ACCEPT, _LINK) as response:
                return await self._page(response)
        except _TRANSPORT_ERRORS as exc:
            raise _failure(exc, _LINK) from None

    async def _page(self, response: httpx.Response) -> FetchedPage:
        media, charset = _content_type(response)
        final_url = str(response.url)
        if media in HTML_TYPES:
            body, truncated = await _read(response, self.max_bytes)
            return FetchedPage(final_url, HTML_TYPE, body, charset, truncated)
        if media == PDF_TYPE:
            declared = _declared_length(response)
            if declared is not None and declared > self.max_pdf_bytes:
                raise LinkSkipped(f"the PDF is larger than {_megabytes(self.max_pdf_bytes)}")
            return FetchedPage(final_url, PDF_TYPE, await self._whole_pdf(response))
        if media not in _UNNAMED_TYPES:
            raise LinkSkipped(NOT_A_PAGE)
        # No type named: read as much as either kind may be, then let the bytes say which.
        body, more = await _read(response, max(self.max_bytes, self.max_pdf_bytes))
        if binary_type(body[:HEAD_SIZE]) == PDF_TYPE:
            if more or len(body) > self.max_pdf_bytes:
                raise LinkSkipped(f"the PDF is larger than {_megabytes(self.max_pdf_bytes)}")
            return FetchedPage(final_url, PDF_TYPE, body)
        if not _HTML_START.search(body[:1024]):
            raise LinkSkipped(NOT_A_PAGE)
        truncated = more or len(body) > self.max_bytes
        return FetchedPage(final_url, HTML_TYPE, body[: self.max_bytes], charset, truncated)

    async def _whole_pdf(self, response: httpx.Response) -> bytes:
        body, more = await _read(response, self.max_pdf_bytes)
        if more:
            raise LinkSkipped(f"the PDF is larger than {_megabytes(self.max_pdf_bytes)}")
        return body

    async def extract_link(self, url: str) -> tuple[Extracted, bytes | None]:
        """What the link at `url` says, and the bytes of a linked PDF. A web page: (`done`,
        read in a worker thread; None). Nothing to read: (`skipped` with a reason; None). A
        PDF: (`done` with only `details["final_url"]`; its bytes, for the PDF engine, whose
        result goes over these details). Raises `ExtractionFailed` when a later attempt may
        succeed."""
        try:
            page = await self.fetch_page(url)
        except LinkSkipped as exc:
            return Extracted("skipped", LINK_ENGINE, reason=exc.reason), None
        if page.content_type == PDF_TYPE:
            return Extracted("done", LINK_ENGINE, details={"final_url": page.final_url}), page.body
        extracted = await asyncio.to_thread(extract_html, page.body, page.final_url, charset=page.charset)
        if page.truncated:
            extracted = dataclasses.replace(extracted, details={**extracted.details, "truncated": True})
        return extracted, None

    async def fetch_image(self, url: str) -> tuple[bytes, str]:
        """The preview image at `url` and its type (JPEG, PNG, WebP or GIF, judged by its
        bytes), through the same guard, redirects and deadline; at most `max_bytes`.
        Every refusal is `ExtractionFailed` with a short reason."""
        try:
            async with asyncio.timeout(self.timeout), self._answer(url, IMAGE_ACCEPT, _IMAGE) as response:
                media, _ = _content_type(response)
                if media not in PREVIEW_IMAGE_TYPES and media not in _UNNAMED_TYPES:
                    raise ExtractionFailed("the image is not a JPEG, PNG, WebP or GIF")
                declared = _declared_length(response)
                too_large = f"the image is larger than {_megabytes(self.max_bytes)}"
                if declared is not None and declared > self.max_bytes:
                    raise ExtractionFailed(too_large)
                body, more = await _read(response, self.max_bytes)
                if more:
                    raise ExtractionFailed(too_large)
                found = binary_type(body[:HEAD_SIZE])
                if found is None or found not in PREVIEW_IMAGE_TYPES:
                    raise ExtractionFailed("the image is not a JPEG, PNG, WebP or GIF")
                return body, found
        except LinkSkipped as exc:
            raise ExtractionFailed(exc.reason) from None
        except _TRANSPORT_ERRORS as exc:
            raise ExtractionFailed(_failure(exc, _IMAGE).reason) from None


# -- reading HTML ---------------------------------------------------------------------


def _codec(label: str | None) -> str | None:
    """A Python text codec for a charset label, or None when there is none."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        b"a".decode(name, errors="replace")  # LookupError: unknown, or bytes-to-bytes (base64)
    except LookupError:
        return None
    return name


def decode_html(body: bytes, charset: str | None = None) -> str:
    """The page's text: a byte order mark first, then the HTTP charset, then a `<meta>`
    charset in the first 4 KB (or an XHTML page's XML declaration), then UTF-8. Undecodable
    bytes become U+FFFD (a page cut at the size cap may end inside a character)."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, errors="replace")
    declared = _META_CHARSET.search(body[:4096]) or _XML_DECLARATION.match(body)
    for label in (charset, declared.group(1).decode("ascii") if declared else None):
        name = _codec(label)
        if name:
            return body.decode(name, errors="replace")
    return body.decode("utf-8", errors="replace")


def _label(value: Any) -> str | None:
    """A title or site name on one line, at most `MAX_LABEL_CHARS`, or None when empty."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text[:MAX_LABEL_CHARS] or None


def _meta_content(tree: HtmlElement, key: str) -> str | None:
    for value in tree.xpath("//meta[@property=$key or @name=$key]/@content", key=key):
        if str(value).strip():
            return str(value).strip()
    return None


def _preview_image(tree: HtmlElement, page_url: httpx.URL) -> str | None:
    """The page's `og:image` (or `twitter:image`) as an absolute http(s) URL."""
    for key in _IMAGE_META:
        value = _meta_content(tree, key)
        if not value:
            continue
        try:
            image = _web_address(page_url.join(value), "")
        except (LinkSkipped, httpx.InvalidURL, TypeError, ValueError):
            continue
        if len(str(image)) <= MAX_URL_CHARS:
            return str(image)
    return None


def _host_name(url: httpx.URL) -> str:
    host = url.host
    return host[4:] if host.startswith("www.") else host


def extract_html(body: bytes, url: str, *, charset: str | None = None) -> Extracted:
    """The readable text (at most `MAX_TEXT_CHARS`), title, site name and preview image of
    an HTML page fetched from `url` (its final URL, for relative links and the host).
    CPU-bound and offline (trafilatura is handed the HTML): run it in a thread."""
    page_url = httpx.URL(url)
    html = decode_html(body, charset)
    # lxml refuses a str with an XML encoding declaration; the text is decoded already.
    html = re.sub(r"^\s*<\?xml[^>]*\?>", "", html, count=1)
    tree = trafilatura.load_html(html)
    details: dict[str, Any] = {"final_url": url, "title": None, "site_name": _host_name(page_url)}
    if tree is None:
        return Extracted("done", ENGINE, "", details=details)
    # Metadata first, then the text, in the order trafilatura's own bare_extraction uses.
    # No default URL: trafilatura would name the site after it, port and all; the host is
    # the fallback here instead.
    meta = trafilatura.extract_metadata(tree, default_url=None, extensive=False)
    document = trafilatura.bare_extraction(tree, include_comments=False)
    text = getattr(document, "text", None) or ""
    title_element = tree.find(".//title")
    details["title"] = _label(meta.title) or _label(title_element.text_content() if title_element is not None else None)
    details["site_name"] = _label(meta.sitename) or _label(_meta_content(tree, "og:site_name")) or details["site_name"]
    image = _preview_image(tree, page_url)
    if image:
        details["preview_image_url"] = image
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
        details["truncated"] = True
    return Extracted("done", ENGINE, text, details=details)
