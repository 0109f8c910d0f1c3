"""ASGI middleware shared by every service: request ids, the access log, security headers."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common import tracing
from common.errors import InsufficientStorage, is_disk_full
from common.logging import request_id_var
from common.metrics import RequestMetrics

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

access_logger = logging.getLogger("jilu.access")
error_logger = logging.getLogger("jilu.errors")


class RequestIdMiddleware:
    """Accept a sane `X-Request-ID` or make one, expose it to logs and clients, echo it back,
    and write one access-log line per request with its status and latency (and, given
    `request_metrics`, count it and observe its latency by route template).

    It is the outermost layer, so it also turns an unhandled exception into the JSON 500
    (Starlette's own last-resort handler would answer outside it, without the request id).
    Written as plain ASGI (not `BaseHTTPMiddleware`) so streamed bodies pass untouched.
    """

    def __init__(self, app: ASGIApp, request_metrics: RequestMetrics | None = None) -> None:
        self.app = app
        self.request_metrics = request_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        if tracing.enabled():
            tracing.tag_request(request_id)
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER.encode()]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            full = is_disk_full(exc)  # a write that found the data dir full: 507, not a bug
            if full:
                error_logger.warning("no room left on %s %s: %s", scope["method"], scope["path"], exc)
            else:
                error_logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started_response:
                raise  # too late for an error body; the server closes the connection
            error = InsufficientStorage() if full else None
            code, detail = (error.code, error.detail) if error else ("internal_error", "Internal server error")
            body = json.dumps({"error": code, "detail": detail}).encode()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": error.status_code if error else 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - started
            if self.request_metrics is not None:
                self.request_metrics.observe(scope, status, elapsed)
            elapsed_ms = elapsed * 1000
            access_logger.info(
                "%s %s %s %.1fms",
                scope["method"],
                scope["path"],
                status,
                elapsed_ms,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "latency_ms": round(elapsed_ms, 2),
                },
            )
            request_id_var.reset(token)


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
]


class SecurityHeadersMiddleware:
    """Headers every response carries, whatever produced it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# The order methods are listed in `Allow`.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def path_methods(scope: Scope) -> tuple[list[str], bool]:
    """The methods this app's own routes answer on the request's path, and whether a relay
    (`common.api_clients.forwarding`) takes it instead: then its owner knows the methods.

    A method counts when the first route matching path and method, the one the router
    would pick, is a local one. Mounts (the web port's Flask app) are left to answer for
    themselves."""
    from fastapi.routing import iter_route_contexts
    from starlette.routing import Match, Mount

    routes = [r for r in iter_route_contexts(scope["app"].router.routes) if not isinstance(r.original_route, Mount)]
    local: list[str] = []
    relayed = False
    for method in METHODS:
        probe = {**scope, "method": method, "fastapi": {}}  # matching writes there; keep the request's own
        for route in routes:
            if route.matches(probe)[0] is Match.FULL:
                if getattr(route.endpoint, "relays_to", None):
                    relayed = True
                else:
                    local.append(method)
                break
    return local, relayed


def allow_header(methods: list[str]) -> bytes:
    return ", ".join([*methods, "OPTIONS"] if "OPTIONS" not in methods else methods).encode()


class AllowedMethodsMiddleware:
    """`OPTIONS` on a path answers 204 with `Allow` listing the methods the path takes, and a
    405 carries the same `Allow` (the router's own names only the one route it tried).

    Inside CORSMiddleware, which answers CORS preflights first. A path served by a relay is
    left to the relay, so `OPTIONS` reaches the owner and its answer is the owner's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            local, _ = path_methods(scope)
            if local and "OPTIONS" not in local:
                headers = [(b"allow", allow_header(local)), (b"content-length", b"0")]
                await send({"type": "http.response.start", "status": 204, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
            await self.app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                local, _ = path_methods(scope)
                if local and scope["method"] not in local:  # the router's 405, not a relayed one
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                    message["headers"] = [*headers, (b"allow", allow_header(local))]
            await send(message)

        await self.app(scope, receive, send_with_allow)
