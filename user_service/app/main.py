"""user_service's app: accounts and tokens."""

from fastapi import FastAPI

from common.app import create_service_app
from user_service.app.admin.routes import router as admin_router
from user_service.app.auth.routes import router as auth_router
from user_service.app.config import UserSettings, get_settings
from user_service.app.users.routes import router as users_router

__all__ = ["create_app", "get_settings"]


def create_app(settings: UserSettings | None = None) -> FastAPI:
    return create_service_app(
        "user_service",
        settings or get_settings(),
        routers=[auth_router, users_router, admin_router],
        description="Users, registration, login, tokens, roles and API tokens.",
    )
