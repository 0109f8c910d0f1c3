"""An example on every JSON and form request body of the document, for bodies that show none.

The examples themselves live in one place each: on the model
(`model_config = ConfigDict(json_schema_extra={"examples": [...]})`), or, for a body that has
no model, in the route's `openapi_extra`. Here the first of a model's examples is shown on
the request body, and a body with none gets one made from its schema (required members, typed
placeholders), so a new body is never without."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

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
    """Give each JSON or form content of `operation`'s body an `example` (kept when it has one):
    its model's first example, else one made from the schema."""
    content = operation.get("requestBody", {}).get("content", {})
    for media_type, entry in content.items():
        if "example" in entry or "examples" in entry or media_type == "multipart/form-data":
            continue
        if media_type != "application/json" and not media_type.startswith("application/x-www-form-urlencoded"):
            continue
        example = example_from_schema(entry.get("schema", {}), components)
        if example is not None:
            entry["example"] = example
