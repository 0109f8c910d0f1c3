"""The httpx client factory: timeouts, pooling, and the request id on every outgoing call."""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx

from common.logging import request_id_var
from common.middleware import REQUEST_ID_HEADER


async def _forward_request_id(request: httpx.Request) -> None:
    request_id = request_id_var.get()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle takes ~25 ms, and every
    client (each app's lifespan makes one) would otherwise load it again."""
    return httpx.create_ssl_context()


def create_http_client(timeout: float = 30.0, *, connect_timeout: float = 5.0, **kwargs: Any) -> httpx.AsyncClient:
    """A shared `AsyncClient`; make one in the lifespan, close it there.

    Redirects are never followed (a URL a user configured must not bounce us elsewhere).
    """
    hooks = kwargs.pop("event_hooks", {})
    if "transport" not in kwargs:
        kwargs.setdefault("verify", shared_ssl_context())
    hooks.setdefault("request", []).append(_forward_request_id)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        follow_redirects=False,
        event_hooks=hooks,
        **kwargs,
    )
