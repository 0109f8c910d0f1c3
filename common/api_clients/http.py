"""The httpx client factory: timeouts, pooling, and the request id on every outgoing call."""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx

from common import tracing
from common.logging import request_id_var
from common.middleware import REQUEST_ID_HEADER


async def _forward_request_id(request: httpx.Request) -> None:
    request_id = request_id_var.get()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id


# Seconds an idle connection is kept for reuse: less than the servers' keep-alive (uvicorn: 5).
KEEPALIVE_SECONDS = 2.0


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle takes ~25 ms, and every
    client (each app's lifespan makes one) would otherwise load it again."""
    return httpx.create_ssl_context()


def create_http_client(
    timeout: float = 30.0, *, connect_timeout: float = 5.0, traced: bool = False, **kwargs: Any
) -> httpx.AsyncClient:
    """A shared `AsyncClient`; make one in the lifespan, close it there.

    Redirects are never followed (a URL a user configured must not bounce us elsewhere).
    `traced`: calls to Jilu's own services, which get a client span and the trace context
    when tracing is on (`common.tracing`); never for third parties such as LLM providers.
    """
    hooks = kwargs.pop("event_hooks", {})
    # An idle kept-alive connection is dropped well before uvicorn closes it (its
    # timeout_keep_alive, 5 s): at equal timeouts a request sent on a connection the server is
    # just closing fails (`RemoteProtocolError`, relayed as a 502), seen under load (bench/load.py).
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=KEEPALIVE_SECONDS)
    if "transport" not in kwargs:
        kwargs.setdefault("verify", shared_ssl_context())
    if traced and tracing.enabled():
        inner = kwargs.pop("transport", None) or httpx.AsyncHTTPTransport(verify=kwargs.pop("verify"), limits=limits)
        kwargs["transport"] = tracing.TracingTransport(inner)
    hooks.setdefault("request", []).append(_forward_request_id)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=limits,
        follow_redirects=False,
        event_hooks=hooks,
        **kwargs,
    )
