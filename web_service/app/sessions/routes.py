"""`/api/v1/auth/session`: the web app's login, silent refresh and logout.

Registered before the relay of `/api/v1/auth/*` to user_service, so these three win. Each
refuses a request without the web app's own `Origin` (403 `forbidden_origin`) before it
reads anything: the cookie is SameSite=Strict already, this is the second lock.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials

from common.api_clients import client_headers
from common.errors import (
    Forbidden,
    ForbiddenOrigin,
    JiluError,
    RateLimited,
    RelayedError,
    ServiceUnavailable,
    TokenInvalid,
    Unauthorized,
    UpstreamError,
    error_responses,
)
from common.security.auth import bearer_scheme
from common.security.origin import is_https
from web_service.app.deps import AccountSessionsDep, SettingsDep, same_origin
from web_service.app.sessions.cookies import REFRESH_COOKIE, cleared_cookie, refresh_cookie
from web_service.app.sessions.schemas import SessionLogin, SessionToken
from web_service.app.sessions.service import AccountSessions, TokenPair

router = APIRouter(
    prefix="/api/v1/auth/session",
    tags=["web sessions"],
    dependencies=[Depends(same_origin)],
    responses=error_responses(ForbiddenOrigin, ServiceUnavailable, UpstreamError),
)

RefreshCookie = Annotated[
    str | None, Cookie(alias=REFRESH_COOKIE, description="The refresh token, set by this service (HttpOnly)")
]


def _answer(tokens: TokenPair, sessions: AccountSessions, secure: bool, response: Response) -> SessionToken:
    response.headers.append("set-cookie", refresh_cookie(tokens.refresh_token, sessions.cookie_max_age, secure=secure))
    response.headers["cache-control"] = "no-store"
    return SessionToken(access_token=tokens.access_token, expires_in=tokens.expires_in)


@router.post("", response_model=SessionToken, responses=error_responses(Unauthorized, Forbidden, RateLimited))
async def open_session(
    body: SessionLogin, request: Request, response: Response, sessions: AccountSessionsDep, settings: SettingsDep
) -> SessionToken:
    """Log in with `{username, password}`. The answer carries the access token; the refresh
    token is set as the `jilu_refresh` cookie (HttpOnly, SameSite=Strict, Path=/api/v1/auth).
    user_service's refusals come back as they are: 401, 403 deactivated, 429 with Retry-After."""
    tokens = await sessions.log_in(body.username, body.password, client_headers(request, settings))
    return _answer(tokens, sessions, is_https(request, settings), response)


@router.post("/refresh", response_model=SessionToken, responses=error_responses(Unauthorized))
async def refresh_session(
    request: Request,
    response: Response,
    sessions: AccountSessionsDep,
    settings: SettingsDep,
    refresh_token: RefreshCookie = None,
) -> SessionToken:
    """A new access token for the session in the `jilu_refresh` cookie, which is rotated. 401
    without the cookie (`unauthorized`), or when its session has ended (`session_ended`; the
    cookie is then cleared). A cookie presented again within the refresh grace window (two
    tabs at once, a retry after a lost answer) gets the same answer and the same new cookie."""
    if not refresh_token:
        raise Unauthorized("no session; log in")
    try:
        tokens = await sessions.refresh(refresh_token, client_headers(request, settings))
    except RelayedError as exc:
        if exc.status_code not in (401, 422):
            raise
        error = exc if exc.status_code == 401 else TokenInvalid("invalid session cookie")
        error.headers["set-cookie"] = cleared_cookie(secure=is_https(request, settings))
        raise error from None
    return _answer(tokens, sessions, is_https(request, settings), response)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
async def close_session(
    request: Request,
    sessions: AccountSessionsDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    refresh_token: RefreshCookie = None,
) -> Response:
    """Log out: end the session of the bearer token, and the cookie's session, then clear the
    cookie. 204 also when there was no session left to end; the cookie is cleared even when
    user_service cannot be reached (then 502/503)."""
    cleared = cleared_cookie(secure=is_https(request, settings))
    client = client_headers(request, settings)
    try:
        if credentials is not None:
            await sessions.log_out(credentials.credentials, client)
        if refresh_token:
            # The cookie's session may be another than the bearer's (a login in another tab);
            # it can only be ended with an access token of its own.
            try:
                tokens = await sessions.refresh(refresh_token, client)
            except RelayedError as exc:
                if exc.status_code not in (401, 422):  # 401: that session is already over
                    raise
            else:
                await sessions.log_out(tokens.access_token, client)
    except JiluError as exc:
        exc.headers["set-cookie"] = cleared
        raise
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"set-cookie": cleared})
