"""Where a request was made to (its scheme and origin), and whether a page of that very origin
made it.

Behind a `JILU_TRUSTED_PROXIES` proxy the address the browser used is the proxy's, so its
`X-Forwarded-Proto` and `X-Forwarded-Host` are believed; from any other peer they are
ignored (the same trust rule as `client_address`). Of a comma-separated list only the last
value counts: the one the trusted proxy itself added. Earlier values came from further away,
and a proxy that appends to a header the client sent would leave the client's value first.
"""

from __future__ import annotations

from starlette.requests import Request

from common.config import JiluSettings
from common.errors import ForbiddenOrigin
from common.security.client_address import from_trusted_proxy

DEFAULT_PORTS = {"http": "80", "https": "443"}


def _last(value: str) -> str:
    """The last of a comma-separated forwarded list: what the nearest (trusted) proxy added."""
    return value.rsplit(",", 1)[-1].strip()


def request_scheme(request: Request, settings: JiluSettings) -> str:
    """`https` or `http`, as the browser used it."""
    forwarded = _last(request.headers.get("x-forwarded-proto", "")).lower()
    if forwarded in DEFAULT_PORTS and from_trusted_proxy(request, settings):
        return forwarded
    return request.url.scheme


def is_https(request: Request, settings: JiluSettings) -> bool:
    return request_scheme(request, settings) == "https"


def _normalise(scheme: str, host: str) -> str:
    scheme, host = scheme.lower(), host.strip().lower()
    name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if name and port == DEFAULT_PORTS.get(scheme):
        host = name
    return f"{scheme}://{host}"


def request_origin(request: Request, settings: JiluSettings) -> str:
    """The origin the request was made to (`https://jilu.example`), default port left out."""
    host = request.headers.get("host", "")
    if from_trusted_proxy(request, settings):
        host = _last(request.headers.get("x-forwarded-host", "")) or host
    return _normalise(request_scheme(request, settings), host)


def _origin_header(value: str) -> str | None:
    scheme, separator, host = value.strip().partition("://")
    if not separator or scheme.lower() not in DEFAULT_PORTS or not host or "/" in host:
        return None
    return _normalise(scheme, host)


def require_same_origin(request: Request, settings: JiluSettings) -> None:
    """Refuse (403 `forbidden_origin`) a request whose `Origin` header is missing or names
    another origin than the one the request was made to (web_service's `SameOrigin`)."""
    presented = request.headers.get("origin")
    if presented is None:
        raise ForbiddenOrigin("this request needs the Origin header of the web app")
    if _origin_header(presented) != request_origin(request, settings):
        raise ForbiddenOrigin("requests from another origin are refused")
