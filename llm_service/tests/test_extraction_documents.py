"""PDFs and text files (`llm_service.app.extraction.documents`): real files made in the test
(PDFs written by hand, by pypdf and by Pillow), scanned pages read by the real OCR engine."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter

from llm_service.app.extraction.documents import (
    EMPTY_TEXT,
    LOCKED_PDF,
    NO_TEXT_IN_PDF,
    NOT_A_PDF,
    NOT_TEXT,
    extract_pdf,
    extract_text_file,
)
from llm_service.app.extraction.ocr import OcrPool
from llm_service.app.extraction.results import Extracted
from llm_service.tests.text_images import draw_lines, encoded


def text_pdf(*pages: list[str]) -> bytes:
    """A PDF written by hand: one page per list of lines, in Helvetica (Latin text only)."""

    def literal(text: str) -> str:
        return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"

    kids = " ".join(f"{4 + 2 * n} 0 R" for n in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for n, lines in enumerate(pages):
        content = (
            "BT /F1 14 Tf 18 TL 72 720 Td " + " T* ".join(f"{literal(line)} Tj" for line in lines) + " ET"
        ).encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
            f" /Contents {5 + 2 * n} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    pdf = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return pdf


def encrypted(pdf: bytes, *, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


BUDGET = text_pdf(["Quarterly budget review", "moved to Friday afternoon."], ["Second page: the invoice was paid."])


async def test_a_pdf_with_a_text_layer_is_read_page_by_page(pool: OcrPool) -> None:
    extracted = await extract_pdf(BUDGET, pool)

    assert extracted.status == "done"
    assert extracted.engine == "pypdf"
    assert extracted.details == {"page_count": 2}
    assert "Quarterly budget review" in extracted.text
    assert extracted.text.index("Friday") < extracted.text.index("invoice was paid")


async def test_a_pdf_text_is_cut_at_max_chars(pool: OcrPool) -> None:
    extracted = await extract_pdf(BUDGET, pool, max_chars=12)

    assert extracted.text == "Quarterly bu"
    assert extracted.details == {"page_count": 2, "truncated": True}


async def test_a_scanned_pdf_is_read_by_ocr(pool: OcrPool, font: str) -> None:
    page = draw_lines(
        font, [("会议改到周五下午三点", (40, 40)), ("meeting moved to Friday 3pm", (40, 120))], (700, 200)
    )
    extracted = await extract_pdf(encoded(page, "PDF"), pool)

    assert extracted.status == "done"
    assert extracted.engine == "pypdf+rapidocr"
    assert "周五" in extracted.text and "Friday" in extracted.text
    assert extracted.details["page_count"] == 1
    assert extracted.details["ocr_pages"] == 1
    assert 0.5 <= extracted.details["confidence"] <= 1.0


async def test_only_max_ocr_pages_of_a_scan_are_read(pool: OcrPool, font: str) -> None:
    first = draw_lines(font, [("第一页 周五开会", (40, 40))], (600, 130))
    second = draw_lines(font, [("second page invoice", (40, 40))], (600, 130))
    pdf = encoded(first, "PDF", save_all=True, append_images=[second])

    extracted = await extract_pdf(pdf, pool, max_ocr_pages=1)
    assert extracted.details["page_count"] == 2
    assert extracted.details["ocr_pages"] == 1
    assert "周五" in extracted.text
    assert "invoice" not in extracted.text


async def test_a_password_protected_pdf_is_skipped_and_one_only_locked_against_copying_is_read(
    pool: OcrPool,
) -> None:
    locked = await extract_pdf(encrypted(BUDGET, user_password="open sesame"), pool)
    assert locked == Extracted("skipped", "pypdf", reason=LOCKED_PDF)

    # An empty user password: anyone may open it, only printing or copying is restricted.
    restricted = await extract_pdf(encrypted(BUDGET, user_password=""), pool)
    assert restricted.status == "done"
    assert "Friday" in restricted.text


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, not a pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages", BUDGET[:40]],
    ids=["empty", "text", "broken", "truncated"],
)
async def test_a_broken_pdf_is_skipped(pool: OcrPool, data: bytes) -> None:
    assert await extract_pdf(data, pool) == Extracted("skipped", "pypdf", reason=NOT_A_PDF)


async def test_a_pdf_with_blank_pages_is_skipped(pool: OcrPool) -> None:
    extracted = await extract_pdf(text_pdf([], []), pool)
    assert extracted == Extracted("skipped", "pypdf", reason=NO_TEXT_IN_PDF, details={"page_count": 2})


@pytest.mark.parametrize(
    ("data", "text", "encoding"),
    [
        ("会议改到周五\r\nmeeting moved to Friday\r\n".encode(), "会议改到周五\nmeeting moved to Friday\n", "utf-8"),
        ("\ufeff# 笔记\n- 周五".encode(), "# 笔记\n- 周五", "utf-8-sig"),
        ("会议改到周五下午三点，记得带电脑。\n".encode("gb18030"), "会议改到周五下午三点，记得带电脑。\n", "gb18030"),
        ("name,city\n张伟,北京\n".encode("gb18030"), "name,city\n张伟,北京\n", "gb18030"),
        ("笔记 notes".encode("utf-16"), "笔记 notes", "utf-16"),
        # Valid GB18030 bytes too, but they would read as rare characters: Latin-1 it is.
        ("Müller Straße".encode("latin-1"), "Müller Straße", "cp1252"),
        ("café \x81".encode("latin-1"), "café \x81", "latin-1"),
    ],
    ids=["utf-8", "utf-8-bom", "gb18030", "gb18030-csv", "utf-16", "latin-1-like-gb", "latin-1"],
)
async def test_text_files_are_decoded_by_their_encoding(data: bytes, text: str, encoding: str) -> None:
    assert await extract_text_file(data) == Extracted("done", "text", text, details={"encoding": encoding})


async def test_a_text_file_is_cut_at_max_chars_even_inside_a_character() -> None:
    # 10 characters kept of 1,000; the bytes decoded end in the middle of a three-byte character.
    extracted = await extract_text_file(("周" * 1000).encode(), max_chars=10)
    assert extracted == Extracted("done", "text", "周" * 10, details={"encoding": "utf-8", "truncated": True})


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", NOT_TEXT), (b"", EMPTY_TEXT), (b" \r\n\t\n", EMPTY_TEXT)],
    ids=["binary", "empty", "blank"],
)
async def test_files_without_text_are_skipped(data: bytes, reason: str) -> None:
    assert await extract_text_file(data) == Extracted("skipped", "text", reason=reason)
