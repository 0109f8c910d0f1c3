"""What an extraction engine answers: the text it read, or why it read none."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Extracted:
    """An engine's result. `done`: `text` is what it read (possibly empty for a page with no
    readable text); `skipped`: there is nothing it can read here, for `reason` (shown to
    clients, e.g. "no text in the image"), which is not an error and is not retried.
    `details` holds what the engine learned besides the text, JSON-safe: `page_count`,
    `duration_seconds`, `confidence`, `title`, `site_name`, `preview_image_url`, `language`."""

    status: Literal["done", "skipped"]
    engine: str
    text: str = ""
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class ExtractionFailed(Exception):
    """One attempt failed in a way a retry may mend (a timeout, a provider's 5xx, a refused
    or broken download). `reason` is short and safe to store and show (never a provider's
    or a page's own text)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
