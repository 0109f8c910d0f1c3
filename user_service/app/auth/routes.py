"""`/api/v1/auth`: register, log in, refresh, log out."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from common.errors import (
    Conflict,
    Forbidden,
    InvalidCredentials,
    RateLimited,
    ServiceUnavailable,
    SessionEnded,
    Unauthorized,
    UnsupportedMediaType,
    error_responses,
)
from user_service.app.auth import service
from user_service.app.auth.credentials import TOKEN_REQUEST_BODY, login_credentials
from user_service.app.auth.schemas import LoginRequest, RefreshRequest, RegisteredSession, TokenPair
from user_service.app.deps import (
    ClientAddressDep,
    CurrentUser,
    RateLimiterDep,
    RedisDep,
    SessionDep,
    SettingsDep,
    TokensDep,
)
from user_service.app.users import service as users
from user_service.app.users.schemas import UserCreate, UserPublic

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic | RegisteredSession,
    responses=error_responses(Conflict, RateLimited, ServiceUnavailable),
)
async def register(
    body: UserCreate,
    client: ClientAddressDep,
    response: Response,
    session: SessionDep,
    redis: RedisDep,
    tokens: TokensDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
    login: Annotated[
        bool, Query(description="Also log the new account in: the answer is then `{user, tokens}`.")
    ] = False,
) -> UserPublic | RegisteredSession:
    """Create an account. The first account of an instance becomes its administrator.
    The answer is the new user; with `?login=true` it is `{user, tokens}`, the user and a
    token pair of a session opened for it, so an app signs up in one call."""
    limit = await limiter.hit(settings.rate_register_address, "register", client)
    response.headers.update(limit.headers)
    user = await users.register(session, redis, body)
    public = UserPublic.model_validate(user)
    if not login:
        return public
    return RegisteredSession(user=public, tokens=await service.open_session_for(redis, tokens, user))


@router.post(
    "/token",
    response_model=TokenPair,
    responses=error_responses(InvalidCredentials, Forbidden, UnsupportedMediaType, RateLimited),
    openapi_extra=TOKEN_REQUEST_BODY,
)
async def token(
    form: Annotated[LoginRequest, Depends(login_credentials)],
    client: ClientAddressDep,
    response: Response,
    session: SessionDep,
    redis: RedisDep,
    tokens: TokensDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
) -> TokenPair:
    """Log in for an access and a refresh token, with the OAuth2 password form (`username`,
    `password`; urlencoded or multipart) or the same two fields as JSON. Another encoding is
    415; a missing field is 422; both say which encodings are accepted."""
    await limiter.hit(settings.rate_login_address, "login-address", client)
    limit = await limiter.hit(settings.rate_login_user, "login-user", form.username.casefold())
    response.headers.update(limit.headers)
    return await service.login(session, redis, tokens, form.username, form.password)


@router.post("/refresh", response_model=TokenPair, responses=error_responses(SessionEnded, ServiceUnavailable))
async def refresh(
    body: RefreshRequest, session: SessionDep, redis: RedisDep, tokens: TokensDep, settings: SettingsDep
) -> TokenPair:
    """Trade a refresh token for a new pair. The old refresh token stops working; presented
    again within `JILU_REFRESH_GRACE_SECONDS` (30 s) it answers the same new pair again, so a
    retry after a lost answer is safe; later, it ends the whole session. 401 `invalid_token`
    for a token that is not a refresh token of this server, `session_ended` when the
    session is over (log in again)."""
    return await service.refresh(
        session, redis, tokens, body.refresh_token, grace_seconds=settings.refresh_grace_seconds
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(Unauthorized, Forbidden))
async def logout(user: CurrentUser, redis: RedisDep) -> Response:
    """End this session: the access token presented and its refresh tokens stop working."""
    await service.logout(redis, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
