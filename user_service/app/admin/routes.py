"""`/api/v1/admin`: administrators manage the instance's users."""

from typing import Annotated

from fastapi import APIRouter, Query

from common.errors import Conflict, Forbidden, NotFound, Unauthorized, error_responses
from common.pagination import Page, PageCursor, PageLimit
from user_service.app.admin.schemas import AdminUserUpdate
from user_service.app.deps import AdminUser, RedisDep, SessionDep
from user_service.app.users import service as users
from user_service.app.users.schemas import UserPublic

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=error_responses(Unauthorized, Forbidden))


@router.get("/users", response_model=Page[UserPublic])
async def list_users(
    admin: AdminUser,
    session: SessionDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
    q: Annotated[str | None, Query(max_length=64, description="part of a username, name or email")] = None,
) -> Page[UserPublic]:
    """Every user of the instance, newest first."""
    rows, next_cursor = await users.list_users(session, limit=limit, cursor=cursor, q=q)
    return Page[UserPublic](items=[UserPublic.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.patch("/users/{user_id}", response_model=UserPublic, responses=error_responses(NotFound, Conflict))
async def update_user(
    user_id: str, body: AdminUserUpdate, admin: AdminUser, session: SessionDep, redis: RedisDep
) -> UserPublic:
    """Change a user's role, or deactivate / reactivate them (a deactivated user's tokens stop
    working on every service at once)."""
    user = await users.admin_update(session, redis, admin.id, user_id, body.role, body.is_active)
    return UserPublic.model_validate(user)
