"""The SSRF guard for every base URL a user can configure (LLM providers).

Only http and https, no credentials in the URL, and every address the host resolves to must
be public: private, loopback, link-local, multicast, reserved, unspecified and cloud metadata
addresses are refused (IPv4 hidden inside IPv6 too) unless the admin listed the exact
`host:port` in `JILU_LLM_ALLOWED_HOSTS`.

Two moments: `check_base_url` when the URL is saved (a 422 naming `base_url`), and at request
time, because DNS can change in between (rebinding). `GuardedTransport` checks the addresses
at the moment it connects and connects to exactly the address it checked; the client can
also re-check before each request (`OpenAICompatibleClient(allowed_hosts=...)`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

from common.api_clients.http import shared_ssl_context
from common.api_clients.llm.errors import ProviderRefusedAddress
from common.errors import Unprocessable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

FIELD = "base_url"
DEFAULT_PORTS = {"http": 80, "https": 443}
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The refusal reason for a host with no address: callers may treat it as passing (a DNS failure).
HOST_DOES_NOT_RESOLVE = "its host does not resolve"


class UnsafeBaseURL(Unprocessable):
    """A configured base URL that Jilu will not call (422 naming `base_url`)."""

    def __init__(self, message: str) -> None:
        super().__init__(FIELD, message)
        self.reason = message


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (getaddrinfo in a worker thread)."""
    infos = await anyio.to_thread.run_sync(
        lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def unsafe_address(address: str | Address) -> str | None:
    """Why an address may not be called, or None when it is a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 carried inside IPv6 (mapped, 6to4, Teredo, NAT64) is judged as that IPv4.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return unsafe_address(embedded)
    checks = (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_unspecified", "an unspecified address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private address"),
    )
    for attribute, reason in checks:
        if getattr(ip, attribute):
            return reason
    if not ip.is_global:
        return "a non-public address"
    return None


def _host_key(host: str, port: int) -> str:
    host = host.strip().lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def normalise_allowed_hosts(allowed_hosts: Iterable[str]) -> frozenset[str]:
    """`host:port` entries as keys (`[::1]:11434` for IPv6); entries without a port are
    ignored, because the setting names a port on purpose."""
    keys = set()
    for entry in allowed_hosts:
        entry = entry.strip().lower()
        parsed = urlsplit(f"//{entry}")
        try:
            port = parsed.port
        except ValueError:
            continue
        if parsed.hostname and port:
            keys.add(_host_key(parsed.hostname, port))
    return frozenset(keys)


def _parse(url: object) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable URL, or `UnsafeBaseURL`. Parsed by httpx, the
    library that will make the call, so the check and the call agree on the host."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeBaseURL("a base URL is required")
    if any(ch.isspace() or ord(ch) < 32 for ch in url.strip()):
        raise UnsafeBaseURL("the base URL contains white space or control characters")
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError, TypeError):
        raise UnsafeBaseURL("the base URL is not a valid URL") from None
    scheme = parsed.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeBaseURL("the base URL must start with http:// or https://")
    if parsed.userinfo or "@" in urlsplit(url.strip()).netloc:
        raise UnsafeBaseURL("the base URL may not contain a user name or password")
    if parsed.query or parsed.fragment or "?" in url or "#" in url:
        raise UnsafeBaseURL("the base URL may not have a query or a fragment")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UnsafeBaseURL("the base URL has no host")
    port = parsed.port or DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise UnsafeBaseURL("the base URL has an invalid port")
    return scheme, host, port


async def refusal_reason(
    host: str, port: int, allowed: frozenset[str], resolve: Resolver | None = None
) -> tuple[str | None, list[str]]:
    """(why the host may not be called or None, the addresses it resolved to). A listed
    `host:port` is allowed without resolving it."""
    if _host_key(host, port) in allowed:
        return None, []
    try:
        addresses = await (resolve or resolve_host)(host, port)
    except (OSError, UnicodeError):
        return HOST_DOES_NOT_RESOLVE, []
    if not addresses:
        return HOST_DOES_NOT_RESOLVE, []
    for address in addresses:
        try:
            reason = unsafe_address(address)
        except ValueError:
            reason = "an address Jilu cannot check"
        if reason:
            return f"its host resolves to {reason}", addresses
    return None, addresses


async def check_base_url(url: object, allowed_hosts: Iterable[str] = (), *, resolve: Resolver | None = None) -> str:
    """The URL, trimmed and without a trailing slash, when Jilu may call it; otherwise
    `UnsafeBaseURL` (422 naming `base_url`). Resolves the host: call it when saving a URL."""
    _, host, port = _parse(url)
    reason, _ = await refusal_reason(host, port, normalise_allowed_hosts(allowed_hosts), resolve)
    if reason:
        raise UnsafeBaseURL(
            f"the base URL is not allowed: {reason} (an admin may allow it in JILU_LLM_ALLOWED_HOSTS as host:port)"
        )
    assert isinstance(url, str)
    return url.strip().rstrip("/")


async def ensure_allowed(
    url: str, allowed_hosts: Iterable[str] | frozenset[str], resolve: Resolver | None = None
) -> None:
    """The request-time check: `ProviderRefusedAddress` (502) when `url` may not be called now."""
    try:
        _, host, port = _parse(url)
    except UnsafeBaseURL as exc:
        raise ProviderRefusedAddress(f"The LLM provider's URL is not allowed: {exc.reason}") from None
    allowed = allowed_hosts if isinstance(allowed_hosts, frozenset) else normalise_allowed_hosts(allowed_hosts)
    reason, _ = await refusal_reason(host, port, allowed, resolve)
    if reason:
        raise ProviderRefusedAddress(f"The LLM provider's address is not allowed: {reason}")


class _CheckingBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked address itself, so no
    second DNS answer can slip in between the check and the connection."""

    def __init__(self, allowed: frozenset[str], resolve: Resolver | None) -> None:
        self._allowed = allowed
        self._resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                reason, addresses = await refusal_reason(host, port, self._allowed, self._resolve)
        except TimeoutError:
            raise httpcore.ConnectTimeout("resolving the host timed out") from None
        if reason:
            raise ProviderRefusedAddress(f"The LLM provider's address is not allowed: {reason}")
        targets = addresses or [host]  # an allowed host:port is connected to as named
        last_error: Exception | None = None
        for target in targets:
            try:
                return await self._inner.connect_tcp(target, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise ProviderRefusedAddress("Unix sockets are not allowed for LLM providers")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that refuses to connect to non-public addresses (unless listed).

    Use it for the client that calls user-configured URLs:
    `create_http_client(transport=GuardedTransport(settings.llm_allowed_hosts))`. TLS still
    verifies the host name (httpcore passes it as the server name), only the socket goes to
    the checked address. Proxies from the environment are not used by this transport.
    """

    def __init__(
        self,
        allowed_hosts: Sequence[str] = (),
        *,
        resolve: Resolver | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        ssl_context = shared_ssl_context()
        super().__init__(verify=ssl_context, limits=limits)
        # httpx builds its pool without a network backend parameter; the same pool with
        # the checking backend replaces it (the public httpcore API, one private attribute).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckingBackend(normalise_allowed_hosts(allowed_hosts), resolve),
        )
