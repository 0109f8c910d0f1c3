"""Real images with text on them, for the OCR tests and `bench/extraction.py`: drawn with
Pillow in a CJK font that Debian ships (fonts-noto-cjk)."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

NEEDS_FONT = "needs a CJK font: apt-get install fonts-noto-cjk"
_KNOWN_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)


def cjk_font_path() -> str | None:
    """A font file with Chinese and Latin glyphs, or None when the machine has none."""
    for known in _KNOWN_FONTS:
        if Path(known).is_file():
            return known
    if shutil.which("fc-match"):
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", "Noto Sans CJK SC"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
        # fc-match answers with its best guess, which may be a font with no Chinese in it.
        if found and Path(found).is_file() and "CJK" in found:
            return found
    return None


def draw_lines(
    font_path: str,
    lines: Sequence[tuple[str, tuple[int, int]]],
    size: tuple[int, int],
    *,
    font_size: int = 40,
    mode: str = "RGB",
    background: tuple[int, ...] = (255, 255, 255),
    colour: tuple[int, ...] = (20, 20, 20),
) -> Image.Image:
    """An image of `size` with each text drawn at its (x, y), top left."""
    image = Image.new(mode, size, background)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(font_path, font_size)
    for text, position in lines:
        draw.text(position, text, font=font, fill=colour)
    return image


def encoded(image: Image.Image, kind: str = "PNG", **options: object) -> bytes:
    """The image as a file's bytes (PNG, JPEG, PDF …)."""
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()
