"""Make a generated OpenAPI document say what the routes really answer.

FastAPI only knows what routes declare. This pass reads each route's dependency tree and
its operation, then adds what the shared machinery answers on its behalf:

- 401 (with `WWW-Authenticate`), 403 (deactivated account, missing scope, admin only) and
  429 (the per-user limit `JILU_RATE_USER`) on every operation behind `CurrentUser`;
- 404 where the path names something, 413 and 415 where there is a body, 422 where there are
  parameters or a body (as `ValidationErrorBody`, not FastAPI's `HTTPValidationError`);
- 503 where the database or Redis is touched (with `Retry-After` when sent);
- `Retry-After` on every 429, `ETag` on answers that carry a record (and 304 where the
  operation takes `If-None-Match`);
- the bearer (JWT access token) and API token (`jilu_pat_…`) security schemes per operation;
- an example on every JSON or form request body;
- no `null` in a parameter's schema (a parameter is sent with a value, or not at all).

Responses a route declares itself are kept; only their missing headers are added.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import routing
from fastapi.dependencies.models import Dependant
from starlette.routing import BaseRoute

from common.deps import _redis, admin_user, current_user, get_session
from common.errors import VersionConflict
from common.openapi.examples import add_request_examples
from common.security.api_tokens import API_TOKEN_PREFIX
from common.security.auth import bearer_scheme

Schema = dict[str, Any]
REF = "#/components/schemas/"
ERROR_BODY = {"$ref": REF + "ErrorBody"}
VALIDATION_BODY = {"$ref": REF + "ValidationErrorBody"}
HTTP_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")

BEARER = "bearerAuth"
API_TOKEN = "apiToken"
SECURITY_SCHEMES: Schema = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from `POST /api/v1/auth/token` (or `/refresh`), sent as "
        "`Authorization: Bearer <token>`. It lives `JILU_ACCESS_TOKEN_MINUTES`; on 401 "
        "`token_expired`, refresh it.",
    },
    API_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": f"{API_TOKEN_PREFIX}…",
        "description": f"A personal API token (`{API_TOKEN_PREFIX}…`, made under `/api/v1/users/me/api-tokens`), "
        "sent as `Authorization: Bearer <token>`; it carries the scopes `read` and/or `write`.",
    },
}

FIELD_PROBLEM: Schema = {
    "title": "FieldProblem",
    "type": "object",
    "description": "One reason a request was refused as invalid.",
    "required": ["field", "message", "type"],
    "properties": {
        "field": {"type": "string", "description": "where: `body.title`, `query.limit`, `path.record_id`, …"},
        "message": {"type": "string", "description": "what is wrong, for a person"},
        "type": {"type": "string", "description": "a stable kind, e.g. `string_too_long`, `missing`"},
    },
}
VALIDATION_ERROR_BODY: Schema = {
    "title": "ValidationErrorBody",
    "type": "object",
    "description": "422: the request does not validate; `detail` lists every problem.",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "`validation_error`"},
        "detail": {"type": "array", "items": {"$ref": REF + "FieldProblem"}},
    },
}
ERROR_DETAIL: Schema = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": REF + "FieldProblem"}}],
    "title": "Detail",
    "description": "a message for a person, or (validation errors) the list of field problems",
}

# `text/event-stream`: its schema describes each event of the stream, as an SSE parser hands
# it over (OpenAPI 3.2's `itemSchema`, which tools read `schema` as before 3.2); `data` is
# JSON text, what it holds is named per operation in the description.
EVENT_STREAM = "text/event-stream"
SSE_EVENT: Schema = {
    "title": "ServerSentEvent",
    "type": "object",
    "description": "One event of the stream; `: ping` comments between events carry none.",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "description": "the event's name (`message` when unnamed)"},
        "data": {"type": "string", "description": "its data: JSON text"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}

RETRY_AFTER = {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}
HEADERS: dict[str, Schema] = {
    "WWW-Authenticate": {
        "description": 'the challenge (RFC 6750), e.g. `Bearer realm="jilu", error="invalid_token"`',
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": 'the record\'s version as an entity tag, e.g. `"3"`; send it back in `If-Match`',
        "schema": {"type": "string"},
    },
    "RateLimit": {"description": "`limit=N, remaining=N, reset=S` (IETF draft)", "schema": {"type": "string"}},
    "RateLimit-Policy": {"description": "`N;w=S`: N requests per S seconds", "schema": {"type": "string"}},
}

DESCRIPTIONS = {
    "401": "Not authenticated: no token, or one that is invalid, expired or of an ended session (`error` says which)",
    "403": "Refused: the account is deactivated, or the token lacks the scope this method needs "
    "(`read` to read, `write` to change)",
    "403-admin": "Refused: administrators only, the account is deactivated, or the token lacks the scope",
    "404": "Not found (also when it is another user's)",
    "413": "The body is larger than this operation accepts",
    "415": "The body's `Content-Type` is not one this operation accepts (the message names them)",
    "422": "The request does not validate; `detail` lists each problem as `{field, message, type}`",
    "429": "Too many requests; try again after `Retry-After` seconds",
    "503": "A store this operation needs (database, Redis) is unavailable or busy; try again "
    "(after `Retry-After` seconds when sent)",
    "304": "Not modified: the `If-None-Match` tag is still current",
}


@dataclass(frozen=True)
class RouteFacts:
    """What a route's dependency tree says about it."""

    authenticated: bool  # behind `CurrentUser` (or `AdminUser`)
    admin: bool
    optional_bearer: bool  # reads a bearer token if there is one, without requiring it
    storage: bool  # touches the database or Redis


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def route_facts(dependant: Dependant) -> RouteFacts:
    calls = set(map(id, _calls(dependant)))
    authenticated = id(current_user) in calls
    storage_calls = {id(get_session), id(_redis)}
    return RouteFacts(
        authenticated=authenticated,
        admin=id(admin_user) in calls,
        optional_bearer=not authenticated and id(bearer_scheme) in calls,
        storage=authenticated or bool(calls & storage_calls),
    )


def schema_routes(routes: Sequence[BaseRoute]) -> Iterator[Any]:
    """Every API route (in its included form) that the document describes."""
    for context in routing.iter_route_contexts(routes):
        if isinstance(context.original_route, routing.APIRoute) and getattr(context, "include_in_schema", False):
            yield context


def _error(responses: Schema, status: str, description: str, body: Schema = ERROR_BODY) -> Schema:
    """The response for `status`, added with `body` when the route did not declare one."""
    if status not in responses:
        responses[status] = {"description": description, "content": {"application/json": {"schema": dict(body)}}}
    return responses[status]


def _header(response: Schema, name: str, header: Schema, *, required: bool = False) -> None:
    headers = response.setdefault("headers", {})
    if name not in headers:
        headers[name] = {**header, "required": True} if required else dict(header)


def _json_schema(response: Schema) -> Schema:
    return response.get("content", {}).get("application/json", {}).get("schema", {})


def _has_parameter(operation: Schema, location: str, name: str) -> bool:
    return any(
        p.get("in") == location and p.get("name", "").lower() == name.lower() for p in operation.get("parameters", [])
    )


def describe_operation(operation: Schema, facts: RouteFacts, has_path_params: bool) -> None:
    """Add the statuses, headers, security and examples `operation` really has."""
    responses: Schema = operation.setdefault("responses", {})
    has_body = "requestBody" in operation
    _one_body_type(operation)
    _no_null_parameters(operation)
    if facts.authenticated:
        _header(_error(responses, "401", DESCRIPTIONS["401"]), "WWW-Authenticate", HEADERS["WWW-Authenticate"])
        _error(responses, "403", DESCRIPTIONS["403-admin" if facts.admin else "403"])
        _error(responses, "429", DESCRIPTIONS["429"])
        operation["security"] = [{BEARER: []}, {API_TOKEN: []}]
    elif facts.optional_bearer:
        operation["security"] = [{BEARER: []}, {API_TOKEN: []}, {}]
    else:
        operation.pop("security", None)
    if "401" in responses:
        _header(responses["401"], "WWW-Authenticate", HEADERS["WWW-Authenticate"])
    if has_path_params:
        _error(responses, "404", DESCRIPTIONS["404"])
    if has_body:
        _error(responses, "413", DESCRIPTIONS["413"])
        _error(responses, "415", DESCRIPTIONS["415"])
    if has_body or operation.get("parameters"):
        _error(responses, "422", DESCRIPTIONS["422"], VALIDATION_BODY)
    if "422" in responses:
        responses["422"]["content"] = {"application/json": {"schema": dict(VALIDATION_BODY)}}
        if responses["422"].get("description") in ("Validation Error", None):
            responses["422"]["description"] = DESCRIPTIONS["422"]
    if facts.storage:
        _error(responses, "503", DESCRIPTIONS["503"])
    if "429" in responses:
        _header(responses["429"], "Retry-After", RETRY_AFTER, required=True)
        _header(responses["429"], "RateLimit", HEADERS["RateLimit"])
        _header(responses["429"], "RateLimit-Policy", HEADERS["RateLimit-Policy"])
    if "503" in responses:
        _header(responses["503"], "Retry-After", RETRY_AFTER)
    _success_headers(operation, responses)
    _typed_content(responses)


def _success_headers(operation: Schema, responses: Schema) -> None:
    conditional = _has_parameter(operation, "header", "If-None-Match")
    for status, response in list(responses.items()):
        if not status.startswith("2"):
            continue
        if _json_schema(response).get("$ref") == REF + "RecordPublic" or conditional:
            _header(response, "ETag", HEADERS["ETag"])
    if conditional and "304" not in responses:
        responses["304"] = {"description": DESCRIPTIONS["304"], "headers": {"ETag": dict(HEADERS["ETag"])}}
    conflict = responses.get("409")
    if conflict and conflict.get("description") == VersionConflict.default_detail and _records_served(responses):
        conflict["content"] = {"application/json": {"schema": {"$ref": REF + "VersionConflictBody"}}}


NULL = {"type": "null"}


def _no_null_parameters(operation: Schema) -> None:
    """A parameter is sent with a value or not at all, never as `null`: FastAPI documents an
    optional `X | None = None` as `anyOf: [X, null]`, which no request can send and which
    makes a fuzzer take the text `1.5` for a wrong type of `tag` (tests/fuzz). Keep `X`."""
    for parameter in operation.get("parameters", []):
        schema: Schema = parameter.get("schema", {})
        branches = schema.get("anyOf")
        if not branches or NULL not in branches:
            continue
        kept = [branch for branch in branches if branch != NULL]
        del schema["anyOf"]
        if len(kept) == 1:
            schema.update({key: value for key, value in kept[0].items() if key not in schema})
        else:
            schema["anyOf"] = kept
        if "default" in schema and schema["default"] is None:
            del schema["default"]


# When a body may come in several encodings, the document lists one (the first here) and names
# the others in words: openapi-python-client 0.29 generates code that cannot be imported for
# an operation with several request content types (its issue #1451).
BODY_TYPE_PREFERENCE = ("application/x-www-form-urlencoded", "application/json", "multipart/form-data")


def _one_body_type(operation: Schema) -> None:
    body = operation.get("requestBody", {})
    content: Schema = body.get("content", {})
    if len(content) < 2:
        return
    rank = {media_type: i for i, media_type in enumerate(BODY_TYPE_PREFERENCE)}
    kept = min(content, key=lambda media_type: rank.get(media_type, len(rank)))
    others = ", ".join(f"`{media_type}`" for media_type in content if media_type != kept)
    note = f"Also accepted with the same fields: {others}."
    body["description"] = f"{body['description']} {note}" if body.get("description") else note
    body["content"] = {kept: content[kept]}


def _typed_content(responses: Schema) -> None:
    """A schema for every non-JSON answer, so a generated client types it (bytes or text),
    and for an event stream the schema of each of its events."""
    for response in responses.values():
        for media_type, entry in response.get("content", {}).items():
            if media_type == EVENT_STREAM and "schema" not in entry:
                entry["schema"] = copy.deepcopy(SSE_EVENT)
            elif "schema" not in entry and not media_type.endswith("json"):
                text = media_type.startswith("text/")
                entry["schema"] = {"type": "string"} if text else {"type": "string", "format": "binary"}


def _records_served(responses: Schema) -> bool:
    return any(_json_schema(r).get("$ref") == REF + "RecordPublic" for s, r in responses.items() if s.startswith("2"))


def _uses(value: Any, ref: str) -> bool:
    return f'"{ref}"' in json.dumps(value)


def _components(document: Schema) -> None:
    schemas: Schema = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["FieldProblem"] = FIELD_PROBLEM
    schemas["ValidationErrorBody"] = VALIDATION_ERROR_BODY
    error_body = schemas.setdefault(
        "ErrorBody",
        {"title": "ErrorBody", "type": "object", "required": ["error", "detail"], "properties": {}},
    )
    error_body["properties"]["error"] = {
        "type": "string",
        "title": "Error",
        "description": "a stable code: `not_found`, `version_conflict`, …",
    }
    error_body["properties"]["detail"] = ERROR_DETAIL
    error_body["description"] = (
        "Every error answer: a stable `error` code and a `detail` for a person. Some codes carry "
        "further members (e.g. `current` with `version_conflict`)."
    )
    if _uses(document["paths"], REF + "VersionConflictBody"):
        schemas["VersionConflictBody"] = {
            "title": "VersionConflictBody",
            "type": "object",
            "description": "409 `version_conflict`: the edit was based on an older version; merge with `current`.",
            "required": ["error", "detail", "current"],
            "properties": {
                "error": {"type": "string", "description": "`version_conflict`"},
                "detail": {"type": "string"},
                "current": {"$ref": REF + "RecordPublic"},
            },
        }
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's, replaced above
        others = {key: value for key, value in schemas.items() if key != name}
        if name in schemas and not _uses([document["paths"], others], REF + name):
            del schemas[name]
    security = document["components"].setdefault("securitySchemes", {})
    security.pop("HTTPBearer", None)
    security.update(SECURITY_SCHEMES)


def make_truthful(document: Schema, routes: Sequence[BaseRoute]) -> Schema:
    """Rewrite `document` (FastAPI's schema of `routes`) in place; returns it."""
    paths: Schema = document.get("paths", {})
    for route in schema_routes(routes):
        facts = route_facts(route.dependant)
        has_path_params = bool(route.dependant.path_params) or "{" in route.path_format
        for method in sorted(route.methods or ()):
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            describe_operation(operation, facts, has_path_params)
    _components(document)
    components = document["components"]["schemas"]
    for operations in paths.values():
        for method, operation in operations.items():
            if method in HTTP_METHODS:
                add_request_examples(operation, components)
    return document
