"""One validation error as a field problem `{field, message, type}` in words a client
developer can act on: malformed JSON says where, a server-owned field says it is read-only."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from starlette.requests import Request

READ_ONLY_MESSAGE = "{name} is read-only (set by the server)"


def field_problem(err: dict[str, Any], body: Any, request: Request | None) -> dict[str, Any]:
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "value_error")
    if kind == "json_invalid" and len(loc) == 2 and isinstance(loc[1], int):
        return {"field": "body", "message": _json_message(err, body, loc[1]), "type": kind}
    if kind == "extra_forbidden" and request is not None and _is_read_only(request, loc):
        return {
            "field": ".".join(map(str, loc)),
            "message": READ_ONLY_MESSAGE.format(name=loc[-1]),
            "type": "read_only",
        }
    return {
        "field": ".".join(str(part) for part in loc),
        "message": str(err.get("msg", "invalid")).removeprefix("Value error, "),
        "type": kind,
    }


def _json_message(err: dict[str, Any], body: Any, position: int) -> str:
    """`malformed JSON at line 1, column 17 (character 16): Expecting value`."""
    reason = (err.get("ctx") or {}).get("error") or "not JSON"
    if not isinstance(body, str):
        return f"malformed JSON at character {position}: {reason}"
    line = body.count("\n", 0, position) + 1
    column = position - (body.rfind("\n", 0, position) + 1) + 1
    return f"malformed JSON at line {line}, column {column} (character {position}): {reason}"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model in `Model` or `Model | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [m for m in map(_model_of, get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def _is_read_only(request: Request, loc: tuple[Any, ...]) -> bool:
    """Whether the extra field at `loc` (`("body", …, name)`) is one the body's schema names in
    its `read_only_fields` class variable (e.g. `common.records.schemas.RecordCreate`)."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    if body_field is None or len(loc) < 2 or loc[0] != "body":
        return False
    model = _model_of(body_field.field_info.annotation)
    for part in loc[1:-1]:
        field = model.model_fields.get(str(part)) if model is not None else None
        model = _model_of(field.annotation) if field is not None else None
    return model is not None and loc[-1] in getattr(model, "read_only_fields", ())
