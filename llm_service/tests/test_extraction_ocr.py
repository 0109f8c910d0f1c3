"""Offline OCR (`llm_service.app.extraction.ocr`): real images drawn in the test, read by the
real RapidOCR engine in a real worker process (one pool for the module: the engine loads once)."""

from __future__ import annotations

import os
import struct
import sys
import zlib

import pytest
from PIL import Image

from llm_service.app.extraction import ocr
from llm_service.app.extraction.ocr import (
    NO_TEXT,
    NOT_AN_IMAGE,
    OCR_UNAVAILABLE,
    TOO_LARGE,
    OcrPool,
    Unreadable,
    detection_size,
    ocr_image,
    prepare_image,
    read_image,
    text_in_reading_order,
)
from llm_service.app.extraction.results import Extracted, ExtractionFailed
from llm_service.tests.text_images import draw_lines, encoded

CHINESE = "会议改到周五下午三点"
ENGLISH = "meeting moved to Friday 3pm"


def two_lines(font: str, **options: object) -> Image.Image:
    return draw_lines(font, [(CHINESE, (30, 30)), (ENGLISH, (30, 110))], (640, 180), **options)  # type: ignore[arg-type]


def lines_of(extracted: Extracted) -> list[str]:
    return extracted.text.splitlines()


async def test_reads_chinese_and_english_lines_in_order(pool: OcrPool, font: str) -> None:
    extracted = await ocr_image(encoded(two_lines(font)), pool)

    assert extracted.status == "done"
    assert extracted.engine == "rapidocr"
    first, second = lines_of(extracted)
    assert "周五" in first and "会议" in first
    assert "Friday" in second and "meeting" in second
    assert 0.5 <= extracted.details["confidence"] <= 1.0
    assert extracted.details["confidence"] == round(extracted.details["confidence"], 3)


async def test_blocks_on_one_line_are_read_left_to_right_then_the_next_line(pool: OcrPool, font: str) -> None:
    # Drawn right block first, so the order of drawing cannot be what puts them in order.
    image = draw_lines(
        font,
        [("invoice paid", (620, 40)), ("发票已付", (30, 40)), ("next week 下周", (30, 150))],
        (1000, 230),
    )
    extracted = await ocr_image(encoded(image), pool)

    assert extracted.status == "done"
    first, second = lines_of(extracted)
    assert first.index("发票") < first.index("invoice")
    assert "paid" in first
    assert "next" in second and "下周" in second


async def test_a_photo_rotated_by_exif_is_read_upright(pool: OcrPool, font: str) -> None:
    upright = two_lines(font)
    # Orientation 8: stored turned a quarter clockwise, shown after turning it back.
    stored = upright.transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = 8
    data = encoded(stored, "JPEG", quality=95, exif=exif.tobytes())

    result = await pool.read(data)
    assert result.size == upright.size
    first, second = result.text.splitlines()
    assert "周五" in first
    assert "Friday" in second


async def test_a_transparent_screenshot_is_read_on_white(pool: OcrPool, font: str) -> None:
    # Black text on a transparent background: dropping the alpha would leave black on black.
    image = two_lines(font, mode="RGBA", background=(0, 0, 0, 0), colour=(0, 0, 0, 255))
    extracted = await ocr_image(encoded(image), pool)

    assert extracted.status == "done"
    assert "周五" in extracted.text and "Friday" in extracted.text


async def test_a_photo_without_text_is_skipped(pool: OcrPool) -> None:
    photo = Image.merge("RGB", [Image.linear_gradient("L").resize((480, 360)).rotate(angle) for angle in (0, 90, 180)])
    photo = Image.blend(photo, Image.effect_noise((480, 360), 60).convert("RGB"), 0.3)

    extracted = await ocr_image(encoded(photo, "JPEG", quality=85), pool)
    assert extracted == Extracted("skipped", "rapidocr", reason=NO_TEXT)


@pytest.mark.parametrize(
    "data",
    [b"", b"just some words, not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"%PDF-1.4\n%%EOF\n"],
    ids=["empty", "text", "broken-png", "pdf"],
)
async def test_bytes_that_are_not_an_image_are_skipped(pool: OcrPool, data: bytes) -> None:
    assert await ocr_image(data, pool) == Extracted("skipped", "rapidocr", reason=NOT_AN_IMAGE)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares a size and holds (almost) nothing: what a decompression bomb starts with."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("size", [(12_000, 9_000), (40_000, 40_000)], ids=["over-the-limit", "twice-over"])
async def test_a_decompression_bomb_is_skipped_undecoded(pool: OcrPool, size: tuple[int, int]) -> None:
    assert await ocr_image(png_header(*size), pool) == Extracted("skipped", "rapidocr", reason=TOO_LARGE)


def test_large_photos_are_downscaled_to_the_pixel_budget_and_screenshots_are_not() -> None:
    photo = encoded(Image.new("RGB", (4000, 3000), (200, 180, 160)), "JPEG", quality=80)
    prepared = prepare_image(photo, max_pixels=2_600_000)
    width, height = prepared.size
    assert 2_400_000 <= width * height <= 2_600_000
    assert abs(width / height - 4 / 3) < 0.01

    screenshot = encoded(Image.new("RGB", (1080, 2400), (255, 255, 255)))
    assert prepare_image(screenshot, max_pixels=2_600_000).size == (1080, 2400)


def box(left: float, top: float, width: float, height: float) -> list[list[float]]:
    return [[left, top], [left + width, top], [left + width, top + height], [left, top + height]]


def test_reading_order_groups_lines_and_joins_words_by_script() -> None:
    boxes = [
        (box(400, 102, 200, 40), "Friday", 0.9),
        (box(10, 100, 150, 40), "会议改到", 0.95),
        (box(170, 98, 100, 42), "周五", 0.97),
        (box(280, 101, 100, 40), "moved", 0.9),
        (box(10, 160, 300, 40), "3pm，", 0.8),
        (box(320, 161, 120, 40), "别忘了", 0.8),
        (box(10, 220, 100, 40), "noise", 0.3),
    ]
    text, confidence, kept = text_in_reading_order(boxes)

    assert text == "会议改到周五 moved Friday\n3pm，别忘了"
    assert kept == 6
    assert confidence == pytest.approx((0.9 + 0.95 + 0.97 + 0.9 + 0.8 + 0.8) / 6)


def test_reading_order_keeps_close_lines_apart_and_finds_nothing_in_nothing() -> None:
    # Lines 30 px apart with 28 px text: close, but not within half a line of each other.
    boxes = [(box(10, 130, 200, 28), "second", 0.9), (box(10, 100, 200, 28), "first", 0.9)]
    assert text_in_reading_order(boxes)[0] == "first\nsecond"
    assert text_in_reading_order([]) == ("", None, 0)
    assert text_in_reading_order([(box(0, 0, 10, 10), "x", 0.1)]) == ("", None, 0)


async def test_a_worker_that_dies_fails_the_read_and_is_replaced(pool: OcrPool, font: str) -> None:
    with pytest.raises(ExtractionFailed):
        await pool.run(os._exit, 1)

    extracted = await ocr_image(encoded(two_lines(font)), pool)
    assert "Friday" in extracted.text


def test_without_opencv_ocr_is_unavailable_not_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a slim image without libGL.so.1 sees: importing cv2 fails. In this process, where no
    # engine is loaded.
    monkeypatch.setitem(sys.modules, "cv2", None)
    monkeypatch.setattr(ocr, "_engine", None)
    with pytest.raises(Unreadable) as caught:
        read_image(encoded(Image.new("RGB", (64, 64), (255, 255, 255))))
    assert caught.value.reason == OCR_UNAVAILABLE


def detector_input(width: int, height: int) -> tuple[int, ...]:
    """The shape the worker's real detector gives an image of this size (run in the worker)."""
    import numpy as np

    engine = ocr._ocr_engine()
    ocr._detect_at(engine, *detection_size(width, height))
    return tuple(engine.text_det.get_preprocess(max(width, height))(np.zeros((height, width, 3), np.uint8)).shape)


async def test_the_engine_detects_at_the_size_chosen(pool: OcrPool) -> None:
    # RapidOCR's own rule for a screenshot would keep 1080 x 2400 (or make it 900 x 2000).
    assert await pool.run(detector_input, 1080, 2400) == (1, 3, 1632, 736)
    # A small wide one is scaled up, as RapidOCR does, but only to the budget (not to 736 x 2624).
    assert await pool.run(detector_input, 640, 180) == (1, 3, 576, 2080)


def test_the_detector_sees_at_most_its_pixel_budget() -> None:
    # Small enough: RapidOCR's own rule (short side up to 736 px).
    assert detection_size(640, 480, 1_200_000) == ("min", 736)
    # A phone screenshot is scaled down to the budget; a long one keeps a usable width.
    kind, side = detection_size(1080, 2400, 1_200_000)
    assert kind == "max" and 1080 * 2400 * (side / 2400) ** 2 == pytest.approx(1_200_000)
    kind, side = detection_size(592, 4388, 1_200_000)
    assert kind == "max" and 592 * side / 4388 > 390
    # A small, wide image is scaled up only as far as the budget.
    kind, side = detection_size(2000, 200, 1_200_000)
    assert kind == "min" and 2000 * 200 * (side / 200) ** 2 == pytest.approx(1_200_000)
