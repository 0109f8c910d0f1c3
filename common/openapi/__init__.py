"""One truthful OpenAPI document per port (see `truthful`, `merge` and `operation_ids`)."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from common.openapi.merge import merge_owners
from common.openapi.operation_ids import generate_operation_id
from common.openapi.truthful import make_truthful

__all__ = ["generate_operation_id", "install_openapi"]


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and `/openapi.json`) answer the truthful document: FastAPI's,
    post-processed, plus the owners' operations the app relays. Built once per route set."""
    generate = FastAPI.openapi
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        generated = generate(app)  # FastAPI's own cache: rebuilt only when routes change
        if cache.get("source") is not generated:
            document = make_truthful(copy.deepcopy(generated), app.routes)
            cache["document"] = merge_owners(document, app.routes)
            cache["source"] = generated
        result: dict[str, Any] = cache["document"]
        return result

    app.openapi = openapi  # type: ignore[method-assign]
