"""Dependency aliases for user_service's routes: every collaborator a route may take."""

from common.deps import (
    AdminUser,
    ClientAddressDep,
    CurrentUser,
    RateLimiterDep,
    RedisDep,
    ServicesDep,
    SessionDep,
    SettingsDep,
    TokensDep,
)
from common.security import AuthUser

__all__ = [
    "AdminUser",
    "AuthUser",
    "ClientAddressDep",
    "CurrentUser",
    "RateLimiterDep",
    "RedisDep",
    "ServicesDep",
    "SessionDep",
    "SettingsDep",
    "TokensDep",
]
