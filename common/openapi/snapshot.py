"""Write the public part of user_service's and llm_service's OpenAPI into `owners.json`.

    python -m common.openapi.snapshot          # or: make openapi
    python -m common.openapi.snapshot --check  # exit 1 when the committed file is stale

A build-time tool: it imports the owning services to read their schemas, which no service
does at run time (services import `common`, never each other). Only the operations the public
ports relay are kept (`common.openapi.merge.is_forwarded`), with the components they use;
internal-only paths (health, anything outside the forwarded prefixes) stay out.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from common.openapi.merge import FORWARDED, SNAPSHOT, is_forwarded, reachable_components

Schema = dict[str, Any]
OWNER_APPS = {
    "user": ("user_service.app.main", "user_service.app.config", "UserSettings"),
    "llm": ("llm_service.app.main", "llm_service.app.config", "LlmSettings"),
}


def owner_document(owner: str) -> Schema:
    """`owner`'s full OpenAPI document, as its app makes it (development settings, no `.env`)."""
    main, config, settings_name = OWNER_APPS[owner]
    settings_cls = getattr(importlib.import_module(config), settings_name)
    with tempfile.TemporaryDirectory() as data_dir:
        settings = settings_cls(_env_file=None, env="development", data_dir=Path(data_dir), openapi_public=True)
        document: Schema = importlib.import_module(main).create_app(settings).openapi()
    return document


def public_part(owner: str, document: Schema) -> Schema:
    paths = {
        path: {method: op for method, op in operations.items() if is_forwarded(owner, method, path)}
        for path, operations in document.get("paths", {}).items()
    }
    paths = {path: operations for path, operations in paths.items() if operations}
    components = document.get("components", {})
    return {
        "paths": paths,
        "components": {
            "schemas": reachable_components(paths, components.get("schemas", {})),
            "securitySchemes": components.get("securitySchemes", {}),
        },
    }


def build_snapshot() -> dict[str, Schema]:
    """What `owners.json` must hold for the code as it is now."""
    return {owner: public_part(owner, owner_document(owner)) for owner in sorted(FORWARDED)}


def render(snapshot: dict[str, Schema]) -> str:
    return json.dumps(snapshot, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render(build_snapshot())
    if "--check" in argv:
        current = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
        if current != text:
            print(f"{SNAPSHOT} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    SNAPSHOT.write_text(text, encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
