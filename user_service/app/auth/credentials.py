"""The body of `POST /api/v1/auth/token`: the OAuth2 password form, or the same two fields as
JSON. Read by hand because FastAPI binds one encoding per route; the route declares both in
its OpenAPI (`TOKEN_REQUEST_BODY`)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from common.bodies import FORM_TYPES, JSON, is_json, media_type
from common.errors import UnsupportedMediaType
from user_service.app.auth.schemas import LoginRequest

ACCEPTED = (
    "send username and password as form fields (application/x-www-form-urlencoded or "
    "multipart/form-data, the OAuth2 password form) or as a JSON object (application/json)"
)

_LOGIN_SCHEMA = LoginRequest.model_json_schema()
_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "LoginForm",
    "required": ["username", "password"],
    "properties": {
        "username": {"type": "string", "minLength": 1, "maxLength": 254},
        "password": {"type": "string", "format": "password", "minLength": 1},
        "grant_type": {"type": "string", "enum": ["password"]},
        "scope": {"type": "string", "default": ""},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string", "format": "password"},
    },
    "examples": _LOGIN_SCHEMA["examples"],  # the same two fields: LoginRequest's examples
}
TOKEN_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The OAuth2 password form, or the same fields as JSON.",
        "content": {
            "application/x-www-form-urlencoded": {"schema": _FORM_SCHEMA},
            "multipart/form-data": {"schema": _FORM_SCHEMA},
            JSON: {"schema": _LOGIN_SCHEMA},
        },
    }
}


def _problem(loc: tuple[str | int, ...], message: str, kind: str) -> dict[str, Any]:
    return {"loc": ("body", *loc), "msg": f"{message}; {ACCEPTED}", "type": kind}


async def _form_fields(request: Request) -> dict[str, Any]:
    form = await request.form()
    if any(key.lstrip().startswith(("{", "[")) for key in form):
        # JSON under a form's Content-Type reads as one field named by the whole body (the
        # password included), which is never echoed back: say what happened instead.
        message = "the body looks like JSON but is labelled as a form; label it Content-Type: application/json"
        raise RequestValidationError([_problem((), message, "content_type_mismatch")])
    grant_type = form.get("grant_type")
    if grant_type is not None and grant_type != "password":
        raise RequestValidationError([_problem(("grant_type",), "grant_type must be 'password'", "value_error")])
    # Other fields (the OAuth2 form's `scope`, `client_id` ... or anything) are ignored.
    return {key: form[key] for key in ("username", "password") if key in form}


async def _json_fields(request: Request) -> Any:
    try:
        text = (await request.body()).decode()
    except UnicodeDecodeError as exc:
        raise RequestValidationError([_problem((), "malformed JSON: not UTF-8", "json_invalid")]) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # Shaped as FastAPI's own, so the one formatter (common/field_problems.py) says where.
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "ctx": {"error": f"{exc.msg}; {ACCEPTED}"}}
        raise RequestValidationError([error], body=text) from exc


async def login_credentials(request: Request) -> LoginRequest:
    """Username and password from the form or the JSON body; 415 for any other encoding and
    422 for missing or malformed fields, both saying which encodings are accepted."""
    media = media_type(request.headers.get("content-type"))
    if media in FORM_TYPES:
        data = await _form_fields(request)
    elif is_json(media):
        data = await _json_fields(request)
    else:
        shown = media or "no Content-Type"
        raise UnsupportedMediaType(f"{shown} is not accepted here; {ACCEPTED}")
    try:
        return LoginRequest.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(tuple(err["loc"]), err["msg"], err["type"]) for err in exc.errors()]
        raise RequestValidationError(problems) from exc
