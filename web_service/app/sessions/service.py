"""Logging in, refreshing and logging out through user_service's token endpoints.

user_service stays the one owner of sessions; web_service only moves the refresh token
between its JSON answers and the browser's cookie. Its error answers are passed on as they
came (status, code, detail, `Retry-After`); anything else it answers is a 502.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from common.api_clients import ServiceClient
from common.errors import RelayedError, UpstreamError
from web_service.app.sessions.cookies import is_cookie_safe

ClientHeaders = Sequence[tuple[str, str]]

# Error answers of user_service that are the client's business, and the headers that go with them.
RELAYED_STATUSES = {400, 401, 403, 409, 422, 429, 503}
RELAYED_HEADERS = ("retry-after", "www-authenticate", "ratelimit", "ratelimit-policy")


class TokenPair(BaseModel):
    """user_service's answer to a login or a refresh."""

    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


def _relayed(response: httpx.Response) -> RelayedError | UpstreamError:
    """user_service's error answer as an error of ours."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code not in RELAYED_STATUSES or not isinstance(body, dict) or "error" not in body:
        return UpstreamError(f"user_service answered {response.status_code}")
    headers = {name: response.headers[name] for name in RELAYED_HEADERS if name in response.headers}
    extra = {key: value for key, value in body.items() if key not in ("error", "detail")}
    return RelayedError(response.status_code, str(body["error"]), body.get("detail"), headers=headers, **extra)


class AccountSessions:
    """Browser sessions, held by user_service."""

    def __init__(self, users: ServiceClient, refresh_lifetime: timedelta) -> None:
        self.users = users
        self.cookie_max_age = int(refresh_lifetime.total_seconds())

    @staticmethod
    def _tokens(response: httpx.Response) -> TokenPair:
        if response.status_code != 200:
            raise _relayed(response)
        try:
            pair = TokenPair.model_validate_json(response.content)
        except ValidationError as exc:
            raise UpstreamError("user_service answered an unreadable token pair") from exc
        if not is_cookie_safe(pair.refresh_token):
            raise UpstreamError("user_service answered an unreadable token pair")
        return pair

    async def log_in(self, username: str, password: str, client: ClientHeaders) -> TokenPair:
        """A new session for the account, or user_service's refusal (401, 403, 429 ...)."""
        response = await self.users.post(
            "/api/v1/auth/token", data={"username": username, "password": password}, headers=list(client)
        )
        return self._tokens(response)

    async def refresh(self, refresh_token: str, client: ClientHeaders) -> TokenPair:
        """Trade the refresh token for a new pair; the old one stops working."""
        response = await self.users.post(
            "/api/v1/auth/refresh", json={"refresh_token": refresh_token}, headers=list(client)
        )
        return self._tokens(response)

    async def log_out(self, access_token: str, client: ClientHeaders) -> bool:
        """End the session `access_token` belongs to; False when there was none to end (the
        token is expired, its session over, or it is an API token)."""
        headers = [*client, ("authorization", f"Bearer {access_token}")]
        response = await self.users.post("/api/v1/auth/logout", headers=headers)
        if response.status_code == 204:
            return True
        if response.status_code in (401, 403):
            return False
        raise _relayed(response)
