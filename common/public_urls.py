"""Absolute URLs as clients reach each public port: for share links and attachment links.

A port's base URL is `JILU_PUBLIC_WEB_URL` / `JILU_PUBLIC_MOBILE_URL` when set. Empty, it is
the request's own scheme and host: `X-Forwarded-Proto` / `X-Forwarded-Host` are believed only
from a `JILU_TRUSTED_PROXIES` peer (`common.security.origin.request_origin`), otherwise the
`Host` header as received. A `Host` that is not a host name or address (with an optional
port) is not echoed back: the port's local URL is used instead.

Share pages live on the web port, so a share link uses the web base URL even when the mobile
port made it. Without `JILU_PUBLIC_WEB_URL`, a link made on the mobile port points at the
same scheme and host name the request used, on `JILU_WEB_PORT`: right for a plain install
with both ports open, wrong behind a proxy that maps ports — there, set the URL.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from common.config import JiluSettings
from common.security.origin import DEFAULT_PORTS, request_origin

WEB, MOBILE = "web", "mobile"
# host name, IPv4 or [IPv6], optional port: nothing else is worth echoing into a link
_ORIGIN = re.compile(r"^https?://(?:[a-z0-9._-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$")


def _configured(settings: JiluSettings, port: str) -> str:
    return str(getattr(settings, f"public_{port}_url", "") or "")


def _request_origin(request: Request, settings: JiluSettings, service: str) -> str:
    origin = request_origin(request, settings)
    if _ORIGIN.match(origin):
        return origin
    return (
        settings.local_url(settings.port_of(service))
        if service in (WEB, MOBILE)
        else f"{request.url.scheme}://localhost"
    )


def port_base_url(request: Request, settings: JiluSettings, service_name: str) -> str:
    """The base URL (`https://jilu.example`, no trailing slash) of the port that answered,
    `service_name`'s (`web_service`, ...)."""
    service = service_name.removesuffix("_service")
    return _configured(settings, service) or _request_origin(request, settings, service)


def web_base_url(request: Request, settings: JiluSettings, service_name: str) -> str:
    """The base URL of the web port, where share pages live, whichever port answered
    (`service_name`'s)."""
    if settings.public_web_url:
        return settings.public_web_url
    service = service_name.removesuffix("_service")
    origin = _request_origin(request, settings, service)
    if service == WEB:
        return origin
    scheme, _, host = origin.partition("://")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    port = str(settings.web_port)
    return f"{scheme}://{name}" if DEFAULT_PORTS.get(scheme) == port else f"{scheme}://{name}:{port}"
