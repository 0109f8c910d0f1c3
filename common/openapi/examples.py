"""Examples on request bodies: written out for the bodies a client meets first, made from the
schema (required members, typed placeholders) for every other one, so each new body has one."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

# By the body's component name (or, for an inline body, the operationId).
EXAMPLES: dict[str, Any] = {
    "UserCreate": {"username": "lin.mei", "password": "plum-Lantern-42", "display_name": "Lin Mei"},
    "auth_token": {"username": "lin.mei", "password": "plum-Lantern-42"},
    "RefreshRequest": {"refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.…"},
    "UserUpdate": {"display_name": "Lin Mei", "language": "en", "time_zone": "Asia/Shanghai"},
    "PasswordChange": {"current_password": "plum-Lantern-42", "new_password": "teal-Harbour-77"},
    "ApiTokenCreate": {"name": "backup script", "scopes": ["read"], "expires_in_days": 90},
    "AdminUserUpdate": {"is_active": False},
    "SessionLogin": {"username": "lin.mei", "password": "plum-Lantern-42"},
    "RecordCreate": {
        "kind": "diary",
        "title": "Walk by the river",
        "content": "Plum blossoms along the river today. 河边的梅花开了。",
        "tags": ["walk", "spring"],
        "occurred_at": "2026-03-14T17:30:00+08:00",
    },
    "RecordUpdate": {"version": 3, "content": "Plum blossoms along the river, and a heron.", "tags": ["walk"]},
    "SyncPush": {
        "device_id": "phone-7f3a",
        "items": [
            {
                "id": "0190f0c4-6f1e-7cc0-9a53-2d4f5b6e8a10",
                "op": "upsert",
                "base_version": 0,
                "data": {"kind": "note", "content": "written offline"},
            },
            {"id": "0190f0c4-6f1e-7cc0-9a53-2d4f5b6e8a11", "op": "delete", "base_version": 2},
        ],
    },
    "ConversationCreate": {"title": "What did I do in March?", "ephemeral": False},
    "ConversationUpdate": {"title": "March, remembered"},
    "MessageCreate": {"content": "When did I last walk by the river?", "stream": False},
    "LlmConfigUpdate": {"provider": "local"},
    "MemoryCreate": {"content": "Prefers tea to coffee", "importance": 0.6, "long_term": True},
    "MemoryUpdate": {"importance": 0.9},
    "DigestGenerate": {"period": "week"},
    "DigestUpdate": {"is_pinned": True},
}

_FORMATS = {"date-time": "2026-03-14T17:30:00+08:00", "date": "2026-03-14", "email": "lin@example.com", "uuid": ""}


def _resolve(schema: Schema, components: Schema) -> Schema:
    ref = schema.get("$ref")
    return components.get(ref.rsplit("/", 1)[-1], {}) if isinstance(ref, str) else schema


def example_from_schema(schema: Schema, components: Schema, depth: int = 0) -> Any:
    """A plausible value for `schema`: its own example or default, else a typed placeholder;
    objects get their required members only."""
    schema = _resolve(schema, components)
    if schema.get("examples"):
        return schema["examples"][0]
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [s for s in schema.get(key, []) if _resolve(s, components).get("type") != "null"]
        if options:
            return example_from_schema(options[0], components, depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 4:
            return {}
        required = schema.get("required", [])
        properties = schema.get("properties", {})
        return {
            name: example_from_schema(properties[name], components, depth + 1)
            for name in required
            if name in properties
        }
    if kind == "array":
        return [example_from_schema(schema.get("items", {}), components, depth + 1)] if schema.get("minItems") else []
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return False
    if kind == "string":
        if schema.get("format") == "binary":
            return None
        text = _FORMATS.get(schema.get("format", ""), "") or "text"
        return text.ljust(int(schema.get("minLength", 0)), "x")
    return None


def add_request_examples(operation: Schema, components: Schema) -> None:
    """Give each JSON or form content of `operation`'s body an `example` (kept when it has one)."""
    content = operation.get("requestBody", {}).get("content", {})
    for media_type, entry in content.items():
        if "example" in entry or "examples" in entry or media_type == "multipart/form-data":
            continue
        if media_type != "application/json" and not media_type.startswith("application/x-www-form-urlencoded"):
            continue
        schema = entry.get("schema", {})
        name = schema.get("$ref", "").rsplit("/", 1)[-1]
        example = EXAMPLES.get(name, EXAMPLES.get(operation.get("operationId", ""), None))
        if example is None:
            example = example_from_schema(schema, components)
        if example is not None:
            entry["example"] = example
