"""The error hierarchy and the one JSON error shape: `{"error": CODE, "detail": message}`."""

from __future__ import annotations

import errno
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.field_problems import field_problem


class ErrorBody(BaseModel):
    """What every error response carries (declared in routes' `responses=`)."""

    error: str
    detail: str | list[dict[str, Any]]


class JiluError(Exception):
    """Base of every error a route may raise on purpose."""

    status_code = 400
    code = "bad_request"
    default_detail = "Bad request"

    def __init__(self, detail: Any = None, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        self.detail = detail or self.default_detail
        self.headers = headers or {}
        # Further members of the error body, e.g. the current record of a version conflict.
        self.extra = extra
        super().__init__(self.detail)


class BadRequest(JiluError):
    pass


AUTH_REALM = "jilu"


def _quoted(value: str) -> str:
    """`value` as a quoted string of the characters RFC 6750 §3 allows in it: printable
    ASCII but `"` and `\\` (which become `'` and `/`; anything else becomes `?`)."""
    text = value.replace('"', "'").replace("\\", "/")
    return '"' + "".join(ch if " " <= ch <= "~" else "?" for ch in text) + '"'


class Unauthorized(JiluError):
    """401 without credentials (or a refusal that is not about a bearer token). The challenge
    names the scheme and realm only, as RFC 6750 §3.1 asks when no token was presented."""

    status_code, code, default_detail = 401, "unauthorized", "Not authenticated"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": self.challenge(detail), **(headers or {})})

    def challenge(self, detail: str | None) -> str:
        return f"Bearer realm={_quoted(AUTH_REALM)}"


class InvalidCredentials(Unauthorized):
    """A login with a wrong username or password."""

    code, default_detail = "invalid_credentials", "Incorrect username or password"


class BearerTokenRefused(Unauthorized):
    """A token was presented and refused. Every case is `error="invalid_token"` in the
    challenge (RFC 6750 §3.1); the body's `error` code tells the client what to do."""

    def challenge(self, detail: str | None) -> str:
        description = _quoted(detail or self.default_detail)
        return f'Bearer realm={_quoted(AUTH_REALM)}, error="invalid_token", error_description={description}'


class TokenExpired(BearerTokenRefused):
    """The access token is past its expiry: refresh, then retry."""

    code, default_detail = "token_expired", "The access token has expired; refresh it"


class TokenInvalid(BearerTokenRefused):
    """Not a token this server issued or accepts here: bad signature, malformed, wrong kind,
    unknown or revoked API token. (Named apart from `common.security.tokens.InvalidToken`,
    the codec's exception.)"""

    code, default_detail = "invalid_token", "The token is invalid"


class SessionEnded(BearerTokenRefused):
    """The token is genuine but its session is over (logout, refresh family revoked, reuse,
    password change, deactivation, refresh token expired): log in again."""

    code, default_detail = "session_ended", "The session has ended; log in again"


class Forbidden(JiluError):
    status_code, code, default_detail = 403, "forbidden", "Not allowed"


class ForbiddenOrigin(Forbidden):
    """A cookie-borne request from a page of another origin (or naming none): refused unread."""

    code, default_detail = "forbidden_origin", "Requests from another origin are refused"


class NotFound(JiluError):
    status_code, code, default_detail = 404, "not_found", "Not found"


class Conflict(JiluError):
    status_code, code, default_detail = 409, "conflict", "Conflict"


class Unprocessable(JiluError):
    """A field that passed its schema but fails a rule needing more context (422)."""

    status_code, code, default_detail = 422, "validation_error", "Invalid input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__([{"field": field, "message": message, "type": "value_error"}])


class VersionConflict(Conflict):
    """The edit was based on an older version; the body carries the `current` record."""

    code, default_detail = "version_conflict", "The record changed since that version"


class CursorAhead(Conflict):
    """A sync cursor past anything the server has numbered (e.g. the server was restored from
    a backup): the body carries the server's current `cursor`; the client resyncs from 0."""

    code = "cursor_ahead"
    default_detail = "That cursor is ahead of the server's change sequence; drop it and resync from since=0"


class PreconditionRequired(JiluError):
    status_code, code, default_detail = 428, "precondition_required", "Name the version this edit is based on"


class PayloadTooLarge(JiluError):
    status_code, code, default_detail = 413, "payload_too_large", "Payload too large"


class FileTooLarge(PayloadTooLarge):
    """A received file past its cap, worded the same for every route that takes one
    (`common.uploads`): `the file is larger than the 25 MB allowed`."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the file is larger than the {max_bytes / (1024 * 1024):g} MB allowed")
        self.max_bytes = max_bytes


class InsufficientStorage(JiluError):
    """507: the server's disk (the data dir) is full or over its quota; nothing was stored."""

    status_code, code = 507, "insufficient_storage"
    default_detail = "The server has no room left to store this; nothing was stored, try again later"


class UnsupportedMediaType(JiluError):
    status_code, code, default_detail = 415, "unsupported_media_type", "Unsupported media type"


class RateLimited(JiluError):
    status_code, code, default_detail = 429, "rate_limited", "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None, **kwargs: Any) -> None:
        headers = {"Retry-After": str(max(1, int(retry_after))), **kwargs.pop("headers", {})}
        super().__init__(detail, headers=headers)
        self.retry_after = retry_after


class UpstreamError(JiluError):
    status_code, code, default_detail = 502, "upstream_error", "An upstream service failed"


class UpstreamTimeout(JiluError):
    status_code, code, default_detail = 504, "upstream_timeout", "An upstream service timed out"


class ServiceUnavailable(JiluError):
    status_code, code, default_detail = 503, "service_unavailable", "Service unavailable"


class RelayedError(JiluError):
    """An error another Jilu service answered, passed on as it came: its status, code,
    detail, further body members and headers (e.g. `Retry-After`)."""

    def __init__(
        self, status_code: int, code: str, detail: Any, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail, headers=headers, **extra)
        self.status_code = status_code
        self.code = code


# Codes for the errors Starlette raises itself (unknown path, wrong method, ...).
HTTP_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    507: "insufficient_storage",
}


def error_response(status_code: int, code: str, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status_code, headers=headers)


def error_responses(*errors: type[JiluError]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the errors it may answer, all with `ErrorBody`."""
    return {err.status_code: {"model": ErrorBody, "description": err.default_detail} for err in errors}


def _field_problems(exc: RequestValidationError, request: Request | None = None) -> list[dict[str, Any]]:
    return [field_problem(err, exc.body, request) for err in exc.errors()]


async def _jilu_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JiluError)
    body = {"error": exc.code, "detail": exc.detail, **jsonable_encoder(exc.extra)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def undecodable_json(exc: StarletteHTTPException) -> dict[str, Any] | None:
    """The field problem of a JSON body FastAPI could not even decode — bytes that are not
    UTF-8, or nesting deeper than the parser goes — which it answers 400 `There was an error
    parsing the body`; None for any other error. Such a body is malformed JSON like any other:
    the 422 `json_invalid` the documents promise, not an undocumented 400."""
    cause = exc.__cause__
    if exc.status_code != 400:
        return None
    if isinstance(cause, UnicodeDecodeError):
        reason = f"the body is not UTF-8 text (byte {cause.start}: {cause.reason})"
    elif isinstance(cause, RecursionError):
        reason = "the body is nested too deeply"
    else:
        return None
    return {"field": "body", "message": f"malformed JSON: {reason}", "type": "json_invalid"}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    problem = undecodable_json(exc)
    if problem is not None:
        return error_response(422, "validation_error", [problem])
    code = HTTP_STATUS_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "validation_error", _field_problems(exc, request))


# Database errors that mean "busy, try again", not "broken": SQLite's write lock held past
# busy_timeout (e.g. by a large import), PostgreSQL's serialization failures and deadlocks.
_BUSY_MARKERS = ("database is locked", "could not serialize", "deadlock detected")
# ... and "the disk is full": SQLite's SQLITE_FULL, PostgreSQL's disk_full (53100). The
# transaction was rolled back, so nothing of the request was stored.
_FULL_MARKERS = ("database or disk is full", "could not extend file", "no space left on device")
# The OSError numbers of a full disk or a quota reached.
FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def _insufficient_storage() -> JSONResponse:
    error = InsufficientStorage()
    return error_response(error.status_code, error.code, error.detail)


async def _database_busy(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        # The connection died under the request (the server restarted or ended it, a network
        # fault): the transaction did not commit, unless it died during the COMMIT itself.
        # The pool's pre-ping replaces the connection, so trying again works.
        return error_response(
            503, "service_unavailable", "The database connection was lost; try again", {"Retry-After": "1"}
        )
    if is_disk_full(exc):
        return _insufficient_storage()
    # A pool timeout: no connection came free in time, e.g. the turn at SQLite's one write
    # connection (`common.database.engine.create_write_engine`) behind a stuck writer.
    if not isinstance(exc, PoolTimeout) and not any(marker in str(exc) for marker in _BUSY_MARKERS):
        raise exc
    return error_response(503, "service_unavailable", "The database is busy; try again shortly", {"Retry-After": "1"})


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, is a full disk or a reached quota:
    `common.middleware.RequestIdMiddleware` answers such an unhandled error 507, not 500."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in FULL_DISK_ERRNOS:
            return True
        if isinstance(current, DBAPIError) and any(m in str(current).lower() for m in _FULL_MARKERS):
            return True
        current = current.__cause__ or current.__context__
    return False


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(JiluError, _jilu_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _database_busy)  # OperationalError is one
    app.add_exception_handler(PoolTimeout, _database_busy)
    # Unhandled exceptions become the JSON 500 in `common.middleware.RequestIdMiddleware`.
