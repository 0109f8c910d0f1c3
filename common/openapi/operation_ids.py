"""Stable `operationId`s: `<tag>_<function name>`, snake_case, with no path in them.

The tag is the route's first tag (its router's), the name the route function's, less the
words that only repeat the tag: `create_record` under `records` is `records_create`,
`list_memories` under `memories` is `memories_list`, `token` under `auth` is `auth_token`.
A route that changes path keeps its id; renaming the function or its router's tag changes it
(the generated clients' function names), so both are part of the contract.
"""

from __future__ import annotations

import re
from typing import Any

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _words(text: str) -> list[str]:
    return [word for word in re.split(r"[^a-z0-9]+", text.lower()) if word]


def _forms(word: str) -> set[str]:
    """A tag word and its singular (`records` → `record`, `memories` → `memory`)."""
    forms = {word}
    if word.endswith("ies"):
        forms.add(word[:-3] + "y")
    elif word.endswith("s"):
        forms.add(word[:-1])
    return forms


def operation_id_for(tag: str, name: str) -> str:
    """`records`, `create_record` → `records_create`."""
    tag_words = _words(tag)
    repeated = _forms(tag_words[-1]) if tag_words else set()
    name_words = [word for word in _words(name) if word not in repeated] or _words(name)
    if name_words == tag_words[-1:]:  # `health` under `health`
        return "_".join(tag_words)
    return "_".join([*tag_words, *name_words])


def generate_operation_id(route: Any) -> str:
    """FastAPI's `generate_unique_id_function` (also names request-body components)."""
    tags = [str(tag) for tag in (getattr(route, "tags", None) or [])]
    return operation_id_for(tags[0] if tags else "default", route.name)
