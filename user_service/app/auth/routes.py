"""`/api/v1/auth`: register, log in, refresh, log out."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from common.errors import Conflict, Forbidden, RateLimited, ServiceUnavailable, Unauthorized, error_responses
from common.security.client_address import client_address
from user_service.app.auth import service
from user_service.app.auth.schemas import RefreshRequest, TokenPair
from user_service.app.deps import CurrentUser, RateLimiterDep, RedisDep, SessionDep, SettingsDep, TokensDep
from user_service.app.users import service as users
from user_service.app.users.schemas import UserCreate, UserPublic

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=error_responses(Conflict, RateLimited, ServiceUnavailable),
)
async def register(
    body: UserCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    redis: RedisDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
) -> UserPublic:
    """Create an account. The first account of an instance becomes its administrator."""
    limit = await limiter.hit(settings.rate_register_address, "register", client_address(request))
    response.headers.update(limit.headers)
    return UserPublic.model_validate(await users.register(session, redis, body))


@router.post("/token", response_model=TokenPair, responses=error_responses(Unauthorized, Forbidden, RateLimited))
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    response: Response,
    session: SessionDep,
    redis: RedisDep,
    tokens: TokensDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
) -> TokenPair:
    """Log in with the OAuth2 password form (`username`, `password`) for an access and a refresh token."""
    await limiter.hit(settings.rate_login_address, "login-address", client_address(request))
    limit = await limiter.hit(settings.rate_login_user, "login-user", form.username.casefold())
    response.headers.update(limit.headers)
    return await service.login(session, redis, tokens, form.username, form.password)


@router.post("/refresh", response_model=TokenPair, responses=error_responses(Unauthorized, ServiceUnavailable))
async def refresh(body: RefreshRequest, session: SessionDep, redis: RedisDep, tokens: TokensDep) -> TokenPair:
    """Trade a refresh token for a new pair. The old refresh token stops working; using it
    again ends the whole session."""
    return await service.refresh(session, redis, tokens, body.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(Unauthorized, Forbidden))
async def logout(user: CurrentUser, redis: RedisDep) -> Response:
    """End this session: the access token presented and its refresh tokens stop working."""
    await service.logout(redis, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
