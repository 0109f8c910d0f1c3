"""The public ports' one document: their own routes plus the owners' operations they relay.

web_service and mobile_service relay `/api/v1/auth|users|admin` to user_service and
`/api/v1/chat|memories|digests|llm` (and `POST /api/v1/records/{id}/analyze`) to llm_service
(`common.forwarded`). A service never imports another, so the owners' public operations are
read from `owners.json` beside this module, written at build time by
`python -m common.openapi.snapshot` (`make openapi`) and kept current by a test.

An owner's operation is added exactly when a request for it would reach that owner's relay:
the first route of the app matching its path and method is a relay to that owner (so a route
the port serves itself, such as the web sessions under `/api/v1/auth/session`, wins).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import routing
from starlette.routing import BaseRoute

from common.forwarded import LLM_SERVICE_PREFIXES, LLM_SERVICE_ROUTES, USER_SERVICE_PREFIXES

Schema = dict[str, Any]
SNAPSHOT = Path(__file__).resolve().parent / "owners.json"
REF = "#/components/schemas/"

# What each owner's relay carries: path prefixes, and single (method, path) routes.
FORWARDED: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    "user": (USER_SERVICE_PREFIXES, ()),
    "llm": (LLM_SERVICE_PREFIXES, LLM_SERVICE_ROUTES),
}
# What a relay itself may answer, on top of the owner's answers.
RELAY_ERRORS = {
    "502": "The owning service broke off its answer (`upstream_error`)",
    "503": "The owning service is not running right now (`service_unavailable`, with `Retry-After`)",
    "504": "The owning service did not answer in time (`upstream_timeout`)",
}


def is_forwarded(owner: str, method: str, path: str) -> bool:
    """Whether `owner`'s operation is one the public ports relay (else it is internal)."""
    prefixes, single = FORWARDED[owner]
    if (method.upper(), path) in single:
        return True
    return any(path == prefix or path.startswith(prefix.rstrip("/") + "/") for prefix in prefixes)


def _is_relay_to(route: Any, owner: str) -> bool:
    path = route.path_format
    prefixes, single = FORWARDED[owner]
    if any((m, path) in single for m in route.methods or ()):
        return True
    return any(path in (prefix, prefix + "/{rest}") for prefix in prefixes)


def _first_match(routes: Sequence[BaseRoute], method: str, path: str) -> Any | None:
    for route in routing.iter_route_contexts(routes):
        if not isinstance(route.original_route, routing.APIRoute):
            continue
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path) and method.upper() in (route.methods or ()):
            return route
    return None


def relayed_operations(routes: Sequence[BaseRoute], owner: str, paths: Schema) -> Iterator[tuple[str, str]]:
    """(path, method) of `owner`'s `paths` that a request on this app reaches the relay for."""
    for path, operations in paths.items():
        for method in operations:
            route = _first_match(routes, method, path)
            if route is not None and not getattr(route, "include_in_schema", True) and _is_relay_to(route, owner):
                yield path, method


@lru_cache(maxsize=1)
def _snapshot_text() -> str:
    return SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else "{}"


def load_snapshot() -> dict[str, Schema]:
    return json.loads(_snapshot_text())  # type: ignore[no-any-return]


def _rename_refs(value: Any, renames: dict[str, str]) -> Any:
    if not renames:
        return value
    text = json.dumps(value)
    for old, new in renames.items():
        text = text.replace(f'"{REF}{old}"', f'"{REF}{new}"')
    return json.loads(text)


def _refs(value: Any) -> set[str]:
    return set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(value)))


def reachable_components(paths: Schema, schemas: Schema) -> Schema:
    """The component schemas `paths` use, directly or through other components."""
    todo, seen = _refs(paths), set[str]()
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        todo |= _refs(schemas[name])
    return {name: schemas[name] for name in sorted(seen)}


def merge_owner(document: Schema, owner: str, part: Schema, routes: Sequence[BaseRoute]) -> None:
    """Add the operations of `owner` (its snapshot `part`) that `routes` relay to `document`."""
    part = copy.deepcopy(part)
    wanted: dict[str, Schema] = {}
    for path, method in relayed_operations(routes, owner, part.get("paths", {})):
        wanted.setdefault(path, {})[method] = part["paths"][path][method]
    if not wanted:
        return
    schemas: Schema = document.setdefault("components", {}).setdefault("schemas", {})
    theirs = reachable_components(wanted, part.get("components", {}).get("schemas", {}))
    renames = {
        name: f"{owner.capitalize()}{name}"
        for name, schema in theirs.items()
        if name in schemas and schemas[name] != schema
    }
    wanted, theirs = _rename_refs(wanted, renames), _rename_refs(theirs, renames)
    for name, schema in theirs.items():
        schemas.setdefault(renames.get(name, name), schema)
    taken = {op.get("operationId") for ops in document["paths"].values() for op in ops.values() if isinstance(op, dict)}
    for path, operations in wanted.items():
        for method, operation in operations.items():
            if operation.get("operationId") in taken:
                operation["operationId"] = f"{owner}_{operation['operationId']}"
            for status, description in RELAY_ERRORS.items():
                operation.setdefault("responses", {}).setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": REF + "ErrorBody"}}},
                    },
                )
            document["paths"].setdefault(path, {}).setdefault(method, operation)
    security = part.get("components", {}).get("securitySchemes", {})
    for name, scheme in security.items():
        document["components"].setdefault("securitySchemes", {}).setdefault(name, scheme)


def merge_owners(document: Schema, routes: Sequence[BaseRoute], snapshot: dict[str, Schema] | None = None) -> Schema:
    """`document` with every owner operation that `routes` relay (none on the owners themselves)."""
    snapshot = load_snapshot() if snapshot is None else snapshot
    for owner in sorted(snapshot):
        if owner in FORWARDED:
            merge_owner(document, owner, snapshot[owner], routes)
    return document
