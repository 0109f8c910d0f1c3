"""Calling the other Jilu services by name."""

from __future__ import annotations

from typing import Any

import httpx

from common.config import SERVICE_NAMES, JiluSettings
from common.errors import ServiceUnavailable, UpstreamError, UpstreamTimeout

# How long a client is told to wait before trying a service that is not running again.
RETRY_UNAVAILABLE_SECONDS = 5


class ServiceClient:
    """One internal service (`user`, `llm`, ...) reached at `base_url` through a shared client."""

    def __init__(self, name: str, base_url: str, client: httpx.AsyncClient) -> None:
        self.name = name
        self.service = f"{name}_service"
        self.base_url = base_url.rstrip("/")
        self.client = client

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; an unreachable or slow service becomes a 502 or 504 `JiluError`."""
        try:
            return await self.client.request(method, self.url(path), **kwargs)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{self.service} did not answer in time") from exc
        except httpx.ConnectError as exc:
            raise self.unavailable() from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.service} is unreachable") from exc

    def unavailable(self) -> ServiceUnavailable:
        """The 503 for a service that refused the connection (not running, or restarting): a
        client should come back shortly. A service that broke off its answer is a 502."""
        return ServiceUnavailable(
            f"{self.service} is unavailable; try again shortly",
            headers={"Retry-After": str(RETRY_UNAVAILABLE_SECONDS)},
        )

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def is_healthy(self, timeout: float = 2.0) -> bool:
        try:
            response = await self.client.get(self.url("/health"), timeout=timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


class ServiceDirectory:
    """Where every service answers, from the settings (`JILU_<NAME>_URL` or host and port)."""

    def __init__(self, settings: JiluSettings, client: httpx.AsyncClient) -> None:
        self._clients = {name: ServiceClient(name, settings.url_of(name), client) for name in SERVICE_NAMES}

    def __getitem__(self, name: str) -> ServiceClient:
        return self._clients[name.removesuffix("_service")]
