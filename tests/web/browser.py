"""Finding and launching Chromium for the browser tests and `bench/web.py`.

Playwright for Python (pinned in requirements-dev.txt) drives Debian's `chromium` package
through `executable_path`; no browser is ever downloaded (never run `playwright install`).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

NO_CHROMIUM = "no Chromium found (apt install chromium); browser tests skipped"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    """`JILU_TEST_CHROMIUM` (a path or a command name), else `chromium` or `chromium-browser`
    on PATH; None when there is none."""
    configured = os.environ.get("JILU_TEST_CHROMIUM", "").strip()
    if configured:
        found = shutil.which(configured)
        if found:
            return found
        return configured if Path(configured).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(playwright: Any, executable: str) -> Any:
    """A headless Chromium (Playwright `Browser`) from `executable`."""
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)


def sample_png(width: int = 320, height: int = 200) -> bytes:
    """A small PNG, made here with Pillow: a coloured card with a few shapes."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (245, 236, 220))
    draw = ImageDraw.Draw(image)
    draw.rectangle((16, 16, width - 16, height // 2), fill=(181, 82, 47))
    draw.ellipse((width // 2 - 40, height // 2 - 10, width // 2 + 40, height // 2 + 70), fill=(40, 90, 160))
    for x in range(24, width - 24, 24):
        draw.line((x, height - 40, x + 12, height - 16), fill=(30, 30, 30), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
