"""Request bodies, checked before anyone reads them: the size cap of the bodies the server
parses in memory (JSON and forms, 413) and the media types a route accepts (415).

Both live in one ASGI middleware, so a refused body is never buffered whole: an oversized
`Content-Length` is refused before the body is read, a streamed (chunked) body is counted as
it arrives and refused as soon as it passes the cap, and a body of the wrong type is refused
before its first byte is read. Which types a route accepts is read from the route itself
(the body parameter FastAPI parses for it); routes that read their body themselves (the
login form, the multipart uploads, the import zip) check it themselves, and a route that
streams a multipart body under a cap of its own says so on its endpoint (`own_size_cap`),
so no list of paths is kept here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi.params import Form
from fastapi.routing import iter_route_contexts
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON = "application/json"
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
FORM_TYPES = (URLENCODED, MULTIPART)

_OWN_SIZE_CAP = "__jilu_own_size_cap__"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def own_size_cap(endpoint: Endpoint) -> Endpoint:
    """Mark a route's endpoint as streaming its multipart body itself under a size cap of
    its own (`common.uploads.receive_file`: attachment uploads, the import zip): the guard
    then leaves that body to it, and `receive_file` refuses to run on an unmarked route.
    Every other multipart body is capped like JSON, since FastAPI's and Starlette's form
    parsing keep up to 1 MB per field and 1000 fields."""
    setattr(endpoint, _OWN_SIZE_CAP, True)
    return endpoint


def has_own_size_cap(route: Any) -> bool:
    return bool(getattr(getattr(route, "endpoint", None), _OWN_SIZE_CAP, False))


def route_to_pick(scope: Scope) -> Any:
    """The route the router will pick for this request, before it runs; None when none
    matches fully (a 404 or 405 reads no body)."""
    probe = {**scope, "fastapi": {}}  # matching writes there; keep the request's own
    for route in iter_route_contexts(scope["app"].router.routes):
        if route.matches(probe)[0] is Match.FULL:
            return route
    return None


def media_type(content_type: str | None) -> str:
    """`application/json` from `Application/JSON; charset=utf-8`; "" when there is none."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    """`application/json` and the structured `+json` types (RFC 6839), e.g. `application/merge-patch+json`."""
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


def accepted_media_types(route: Any) -> tuple[str, ...] | None:
    """The media types `route` takes its body in when FastAPI reads it (a JSON model, or
    form fields), plus any further ones its `openapi_extra` declares. None for a route that
    reads its body itself (the login form, uploads, the import zip: each checks the type
    with a message of its own) or takes none, and for a relay (the owner checks)."""
    body_field = getattr(route, "body_field", None)
    if body_field is None:
        return None
    accepted = list(FORM_TYPES if isinstance(body_field.field_info, Form) else (JSON,))
    declared = (getattr(route, "openapi_extra", None) or {}).get("requestBody", {}).get("content", {})
    accepted.extend(media_type(name) for name in declared)
    return tuple(dict.fromkeys(accepted))


def accepts(accepted: Sequence[str], media: str) -> bool:
    for candidate in accepted:
        major, _, minor = candidate.partition("/")
        if candidate in ("*/*", media) or (minor == "*" and media.startswith(major + "/")):
            return True
        if is_json(candidate) and is_json(media):
            return True
    return False


def _content_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


class _BodyRefused(Exception):
    """Unwinds the app after the middleware has answered 413 or 415 itself."""


class BodyGuardMiddleware:
    """Refuse JSON and form bodies over `max_json_bytes` (413 `payload_too_large`) and bodies
    a route does not take (415 `unsupported_media_type`, naming what it takes), before they
    are read.

    The size cap is keyed on the content type: JSON (`application/json`, `+json`) and
    urlencoded forms are capped on every route, before the app runs when `Content-Length`
    says so; multipart bodies too, except on routes marked `own_size_cap` (uploads, the
    import zip: capped by their routes as they stream), which is known once the route is
    picked, at the first read. Other types are left to the route (it refuses them).
    A non-JSON body sent to a JSON route is refused as 415 before its first byte is read,
    so it is never buffered either. The refusal is sent from here, and whatever the app
    answers after it (it sees the read fail) is dropped.
    """

    def __init__(self, app: ASGIApp, max_json_bytes: int) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = _content_length(headers)
        if not length and "transfer-encoding" not in headers:  # no body at all
            await self.app(scope, receive, send)
            return
        await _GuardedRequest(self, scope, receive, send, headers.get("content-type"), length).run()


class _GuardedRequest:
    def __init__(
        self,
        guard: BodyGuardMiddleware,
        scope: Scope,
        receive: Receive,
        send: Send,
        content_type: str | None,
        length: int | None,
    ) -> None:
        self.app, self.cap = guard.app, guard.max_json_bytes
        self.scope, self._receive, self._send = scope, receive, send
        self.media = media_type(content_type)
        # Multipart is capped too unless the route caps it itself: decided at the first read.
        self.capped = is_json(self.media) or self.media == URLENCODED
        self.length = length
        self.received = 0
        self.type_checked = False
        self.refused = False  # the body was refused: reading on fails
        self.answered = False  # ... and the refusal was sent as the answer
        self.response_started = False

    async def run(self) -> None:
        try:
            if self.length is not None and self.length > self.cap and self._capped_before_routing():
                await self._refuse_too_large()  # nothing read, the app never runs
            await self.app(self.scope, self.receive, self.send)
        except _BodyRefused:
            if not self.answered:
                raise  # the app had already started its answer: the server ends the connection

    def _capped_before_routing(self) -> bool:
        # Only for a multipart body already known to be too large is the route looked up early.
        return self.capped or (self.media == MULTIPART and not has_own_size_cap(route_to_pick(self.scope)))

    async def receive(self) -> Message:
        if self.refused:
            raise _BodyRefused
        if not self.type_checked:
            # The first read happens after routing, so the route is known by now.
            self.type_checked = True
            await self._check_media_type()
            if self.media == MULTIPART and not has_own_size_cap(self.scope.get("route")):
                self.capped = True
                if self.length is not None and self.length > self.cap:
                    await self._refuse_too_large()  # nothing read yet
        message = await self._receive()
        if message["type"] == "http.request" and self.capped:
            self.received += len(message.get("body", b""))
            if self.received > self.cap:
                await self._refuse_too_large()
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return  # the app's answer to the failed read; the refusal was the answer
        if message["type"] == "http.response.start":
            self.response_started = True
        await self._send(message)

    async def _check_media_type(self) -> None:
        accepted = accepted_media_types(self.scope.get("route"))
        if accepted is None or accepts(accepted, self.media):
            return
        wanted = " or ".join(accepted)
        sent = f"Content-Type {self.media!r}" if self.media else "no Content-Type"
        await self._refuse(415, "unsupported_media_type", f"send the body as {wanted} (got {sent})")

    async def _refuse_too_large(self) -> None:
        kb = self.cap // 1024
        kind = "JSON" if is_json(self.media) else "form"
        await self._refuse(413, "payload_too_large", f"a {kind} body may be at most {kb} KB")

    async def _refuse(self, status: int, code: str, detail: str) -> None:
        if not self.response_started:
            body = json.dumps({"error": code, "detail": detail}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await self._send({"type": "http.response.start", "status": status, "headers": headers})
            await self._send({"type": "http.response.body", "body": body})
            self.answered = True
        self.refused = True
        raise _BodyRefused
