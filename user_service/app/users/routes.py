"""`/api/v1/users/me`: the caller's own account and API tokens."""

from fastapi import APIRouter, Response, status

from common.errors import BadRequest, Conflict, NotFound, RateLimited, Unauthorized, error_responses
from user_service.app.api_tokens import service as api_tokens
from user_service.app.api_tokens.schemas import ApiTokenCreate, ApiTokenCreated, ApiTokenPublic
from user_service.app.deps import CurrentUser, RateLimiterDep, RedisDep, SessionDep, SettingsDep
from user_service.app.users import service
from user_service.app.users.schemas import PasswordChange, UserPublic, UserUpdate

router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=error_responses(Unauthorized))


@router.get("/me", response_model=UserPublic)
async def read_me(user: CurrentUser, session: SessionDep) -> UserPublic:
    """The caller's account."""
    return UserPublic.model_validate(await service.get(session, user.id))


@router.patch("/me", response_model=UserPublic, responses=error_responses(Conflict))
async def update_me(body: UserUpdate, user: CurrentUser, session: SessionDep) -> UserPublic:
    """Change the caller's email, display name, language or time zone."""
    account = await service.get(session, user.id)
    return UserPublic.model_validate(await service.update_profile(session, account, body))


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(BadRequest, RateLimited))
async def change_password(
    body: PasswordChange,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
) -> Response:
    """Change the password. Every other session of the user ends; this one goes on. Attempts
    count against the login limit, so a stolen token cannot be used to guess the password."""
    await limiter.hit(settings.rate_login_user, "password-change", user.id)
    account = await service.get(session, user.id)
    await service.change_password(
        session, redis, account, body.current_password, body.new_password, keep_session=user.session_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me/api-tokens", response_model=list[ApiTokenPublic])
async def list_api_tokens(user: CurrentUser, session: SessionDep) -> list[ApiTokenPublic]:
    """The caller's API tokens, newest first. The tokens themselves are never shown again."""
    return [ApiTokenPublic.model_validate(row) for row in await api_tokens.list_for(session, user.id)]


@router.post(
    "/me/api-tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiTokenCreated,
    responses=error_responses(Conflict),
)
async def create_api_token(body: ApiTokenCreate, user: CurrentUser, session: SessionDep) -> ApiTokenCreated:
    """Create a personal API token for scripts. The answer is the only time it is shown."""
    return await api_tokens.create(session, user.id, body)


@router.delete("/me/api-tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(NotFound))
async def delete_api_token(token_id: str, user: CurrentUser, session: SessionDep, redis: RedisDep) -> Response:
    """Revoke an API token; it stops working at once."""
    await api_tokens.delete(session, redis, user.id, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
