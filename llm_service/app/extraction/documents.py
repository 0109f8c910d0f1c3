"""PDFs and text files, read offline: a PDF's text layer with pypdf, and the pictures of a
scanned PDF (pages with no text layer) through the OCR pool; text files decoded by what they
are likely written in (UTF-8, GB18030 for Chinese files, else Windows-1252/Latin-1)."""

from __future__ import annotations

import asyncio
import codecs
import io
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llm_service.app.extraction.ocr import MAX_IMAGE_PIXELS, OcrPool, Unreadable
from llm_service.app.extraction.results import Extracted

if TYPE_CHECKING:
    from pypdf import PageObject

PDF_ENGINE = "pypdf"
PDF_OCR_ENGINE = "pypdf+rapidocr"
TEXT_ENGINE = "text"
NOT_A_PDF = "not a PDF Jilu can read"
LOCKED_PDF = "the PDF is protected by a password"
NO_TEXT_IN_PDF = "no text in the PDF"
NOT_TEXT = "not a text file Jilu can read"
EMPTY_TEXT = "the file has no text"

# A page with fewer characters than this (not counting spaces) has no real text layer: a scan,
# perhaps with a page number or a scanner's stamp on it.
SCANNED_PAGE_CHARS = 16
# Pictures read per scanned page, and the smallest side worth reading (not logos or rules).
MAX_IMAGES_PER_PAGE = 8
MIN_IMAGE_SIDE = 48
# How much of a Chinese text must be in GB2312 (the common simplified characters) to take
# GB18030 as the file's encoding: Latin-1 text read as GB18030 gives rare characters instead.
GB2312_SHARE = 0.8
GB2312_SAMPLE = 4000


@dataclass(frozen=True)
class _PdfContent:
    """What the worker got from a PDF: the page count, each page's text layer (pages after
    `max_chars` was reached are left out) and the pictures of up to `max_ocr_pages` pages that
    have no text layer, by page number."""

    page_count: int
    pages: list[str]
    scans: dict[int, list[bytes]] = field(default_factory=dict)


async def extract_pdf(data: bytes, pool: OcrPool, *, max_ocr_pages: int = 10, max_chars: int = 200_000) -> Extracted:
    """A PDF's text: its text layer (engine "pypdf"), and for pages that have none (a scan) the
    text OCR finds in their pictures, for at most `max_ocr_pages` pages (engine
    "pypdf+rapidocr"). At most `max_chars` characters. Encrypted or broken PDFs are `skipped`.
    `details`: `page_count`, and `ocr_pages` and `confidence` when pages were OCR'd."""
    try:
        # pypdf is pure Python: in a worker process it cannot hold the service's GIL.
        content = await pool.run(_read_pdf, data, max_ocr_pages, max_chars)
    except Unreadable as exc:
        return Extracted("skipped", PDF_ENGINE, reason=exc.reason)

    pages = list(content.pages)
    confidences: list[float] = []
    for number, pictures in content.scans.items():
        read: list[str] = []
        for picture in pictures:
            try:
                result = await pool.read(picture)
            except Unreadable:
                continue  # a picture Pillow cannot decode (JBIG2, say): the rest of the page may do
            if result.text and result.confidence is not None:
                read.append(result.text)
                confidences.append(result.confidence)
        # A scan's own small text layer (a page number, a stamp) is kept before what OCR read.
        pages[number] = "\n".join(part for part in (pages[number].strip(), *read) if part)

    engine = PDF_OCR_ENGINE if content.scans else PDF_ENGINE
    details: dict[str, Any] = {"page_count": content.page_count}
    if content.scans:
        details["ocr_pages"] = len(content.scans)
    if confidences:
        details["confidence"] = round(statistics.fmean(confidences), 3)
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        return Extracted("skipped", engine, reason=NO_TEXT_IN_PDF, details=details)
    if len(text) > max_chars:
        text = text[:max_chars]
        details["truncated"] = True
    return Extracted("done", engine, text, details=details)


def _read_pdf(data: bytes, max_ocr_pages: int, max_chars: int) -> _PdfContent:
    """Open a PDF and take its text layer, and the pictures of pages that have none (in the
    worker process). Raises `Unreadable`."""
    from pypdf import PasswordType, PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            # Many PDFs are encrypted with an empty password only to restrict printing or copying.
            raise Unreadable(LOCKED_PDF)
        page_count = len(reader.pages)
    except Unreadable:
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on a broken file
        raise Unreadable(NOT_A_PDF) from exc

    pages: list[str] = []
    scans: dict[int, list[bytes]] = {}
    chars = 0
    for number in range(page_count):
        if chars >= max_chars:
            break
        page: PageObject | None = None
        try:
            page = reader.pages[number]
            text = page.extract_text() or ""
        except Exception:  # noqa: BLE001 - one broken page must not lose the others
            text = ""
        pages.append(text)
        chars += len(text)
        if page is not None and len("".join(text.split())) < SCANNED_PAGE_CHARS and len(scans) < max_ocr_pages:
            pictures = _page_pictures(page)
            if pictures:
                scans[number] = pictures
    return _PdfContent(page_count, pages, scans)


def _page_pictures(page: Any) -> list[bytes]:
    """The pictures of a page worth reading, as image files (JPEG, PNG, TIFF … as pypdf gives
    them): not tiny ones, not ones too large to decode safely, at most MAX_IMAGES_PER_PAGE."""
    pictures: list[bytes] = []
    try:
        names = list(page.images.keys())
    except Exception:  # noqa: BLE001 - a broken resource dictionary: no pictures on this page
        return pictures
    for name in names:
        if len(pictures) >= MAX_IMAGES_PER_PAGE:
            break
        size = _declared_size(page, name)
        if size is not None:
            width, height = size
            if min(width, height) < MIN_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
                continue
        try:
            picture = page.images[name]
        except Exception:  # noqa: BLE001, S112 - a filter pypdf cannot decode (JBIG2 without jbig2dec …)
            continue
        if picture.data:
            pictures.append(bytes(picture.data))
    return pictures


def _declared_size(page: Any, name: Any) -> tuple[int, int] | None:
    """The width and height an image XObject declares (read before decoding it, so a
    decompression bomb is never decoded); None when it cannot be found."""
    path = name if isinstance(name, list | tuple) else [name]
    try:
        resources = page["/Resources"]
        xobject: Any = None
        for step in path:
            xobject = resources["/XObject"][step].get_object()
            resources = xobject.get("/Resources", {})
        return int(xobject["/Width"]), int(xobject["/Height"])
    except Exception:  # noqa: BLE001 - an odd layout: decide on the decoded picture instead
        return None


async def extract_text_file(data: bytes, *, max_chars: int = 200_000) -> Extracted:
    """A text file's text (text/plain, text/markdown, text/csv …): UTF-8 (with or without a
    BOM), UTF-16 with a BOM, GB18030 for Chinese files, else Windows-1252 or Latin-1. Line
    ends become "\\n"; at most `max_chars` characters. `details`: `encoding`."""
    try:
        text, encoding, truncated = await asyncio.to_thread(_decode_text, data, max_chars)
    except Unreadable as exc:
        return Extracted("skipped", TEXT_ENGINE, reason=exc.reason)
    if not text.strip():
        return Extracted("skipped", TEXT_ENGINE, reason=EMPTY_TEXT)
    details: dict[str, Any] = {"encoding": encoding}
    if truncated:
        details["truncated"] = True
    return Extracted("done", TEXT_ENGINE, text, details=details)


def _decode_text(data: bytes, max_chars: int) -> tuple[str, str, bool]:
    """(text, encoding, truncated); only the bytes that can hold `max_chars` characters are
    decoded. Raises `Unreadable` for a binary file."""
    head = data[: max_chars * 4 + 4]  # no encoding here takes more than 4 bytes a character
    cut = len(head) < len(data)
    boms = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
    marked = [encoding for bom, encoding in boms if data.startswith(bom)]
    if not marked and b"\x00" in head:
        raise Unreadable(NOT_TEXT)
    # Latin-1 decodes any bytes: the last resort always answers.
    for encoding in marked or ["utf-8", "gb18030", "cp1252", "latin-1"]:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace" if marked else "strict")
        try:
            # A character cut in two at the end of the head is left out, not an error.
            text = decoder.decode(head, final=not cut)
        except UnicodeDecodeError:
            continue
        if encoding == "gb18030" and not _looks_chinese(text):
            continue
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text[:max_chars], encoding, cut or len(text) > max_chars
    raise AssertionError("latin-1 decodes any bytes")


def _looks_chinese(text: str) -> bool:
    """Whether text decoded as GB18030 reads as Chinese: most of its non-ASCII characters are
    common simplified ones (in GB2312), not the rare ones Latin-1 bytes turn into."""
    others = [char for char in text[: GB2312_SAMPLE * 4] if ord(char) > 0x7F][:GB2312_SAMPLE]
    if not others:
        return True
    common = 0
    for char in others:
        try:
            char.encode("gb2312")
        except UnicodeEncodeError:
            continue
        common += 1
    return common / len(others) >= GB2312_SHARE
