"""Who the client is: the socket peer, unless a trusted hop vouches for someone else.

Two hops are believed:
- a peer listed in `JILU_TRUSTED_PROXIES` (a reverse proxy): its `X-Forwarded-For` is read
  from the right, skipping trusted addresses;
- another Jilu service forwarding a request: it sends the address it resolved in
  `X-Jilu-Client-Address` with the time, signed with the instance secret, so nobody else can
  set it and a captured header stops working after `SIGNATURE_LIFETIME` seconds.
An `X-Forwarded-For` from anyone else is ignored.
"""

from __future__ import annotations

import ipaddress
import time
from functools import lru_cache

from starlette.requests import Request

from common.config import JiluSettings
from common.security.keys import sign, verify_signature

CLIENT_ADDRESS_HEADER = "x-jilu-client-address"
CLIENT_SIGNATURE_HEADER = "x-jilu-client-signature"
_PURPOSE = "client-address"
SIGNATURE_LIFETIME = 60  # seconds; clocks of one instance's hosts agree far better than that

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _vouched_address(request: Request, secret: str) -> str | None:
    """The address a Jilu service signed, if the signature is valid and recent."""
    signed = request.headers.get(CLIENT_ADDRESS_HEADER, "")
    signature = request.headers.get(CLIENT_SIGNATURE_HEADER, "")
    address, _, stamp = signed.rpartition(";")
    if not (address and stamp.isdigit() and signature):
        return None
    if abs(time.time() - int(stamp)) > SIGNATURE_LIFETIME:
        return None
    return address if verify_signature(secret, _PURPOSE, signed, signature) else None


def _peer(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def from_trusted_proxy(request: Request, settings: JiluSettings) -> bool:
    """Whether the socket peer is a `JILU_TRUSTED_PROXIES` proxy, whose `X-Forwarded-*`
    headers are believed (by `client_address` and `common.security.origin`)."""
    networks = _networks(tuple(settings.trusted_proxies))
    return bool(networks) and _is_trusted(_peer(request), networks)


def client_address(request: Request, settings: JiluSettings) -> str:
    """The client's address, by the rules above (`common.deps.ClientAddressDep` in a route)."""
    vouched = _vouched_address(request, settings.secret)
    if vouched is not None:
        return vouched
    peer = _peer(request)
    if not from_trusted_proxy(request, settings):
        return peer
    networks = _networks(tuple(settings.trusted_proxies))
    hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


def signed_client_headers(secret: str, address: str) -> list[tuple[str, str]]:
    """Headers with which a forwarding service vouches for the client's `address` (now),
    signed with the instance `secret`."""
    signed = f"{address};{int(time.time())}"
    return [
        (CLIENT_ADDRESS_HEADER, signed),
        (CLIENT_SIGNATURE_HEADER, sign(secret, _PURPOSE, signed)),
    ]
