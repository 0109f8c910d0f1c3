"""Tags: trimmed, case-folded for Latin script (Chinese is left as written), length-limited."""

from __future__ import annotations

import unicodedata

MAX_TAGS = 32
MAX_TAG_LENGTH = 32


def normalise_tag(raw: str) -> str | None:
    tag = unicodedata.normalize("NFKC", raw).strip().lstrip("#").strip()
    tag = " ".join(tag.split())  # inner runs of white space become one space
    if not tag:
        return None
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"a tag has at most {MAX_TAG_LENGTH} characters")
    return tag.casefold()


def normalise_tags(raw: list[str]) -> list[str]:
    """Normalised, without duplicates, in the order given."""
    seen: dict[str, None] = {}
    for item in raw:
        tag = normalise_tag(item)
        if tag is not None:
            seen.setdefault(tag, None)
    return list(seen)
