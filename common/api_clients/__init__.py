"""httpx clients: the shared client factory, internal services by name, and forwarding."""

from common.api_clients.forwarding import client_headers, forward, forwarding_router
from common.api_clients.http import create_http_client
from common.api_clients.services import ServiceClient, ServiceDirectory

__all__ = [
    "ServiceClient",
    "ServiceDirectory",
    "client_headers",
    "create_http_client",
    "forward",
    "forwarding_router",
]
