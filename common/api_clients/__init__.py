"""httpx clients: the shared client factory, internal services by name, and forwarding."""

from common.api_clients.forwarding import FORWARD_METHODS, client_headers, forward
from common.api_clients.http import create_http_client
from common.api_clients.services import ServiceClient, ServiceDirectory

__all__ = [
    "FORWARD_METHODS",
    "ServiceClient",
    "ServiceDirectory",
    "client_headers",
    "create_http_client",
    "forward",
]
