"""Dependency aliases for llm_service's routes."""

from common.deps import RedisDep, ServicesDep, SessionDep, SettingsDep
from common.security import AdminUser, AuthUser, CurrentUser

__all__ = ["AdminUser", "AuthUser", "CurrentUser", "RedisDep", "ServicesDep", "SessionDep", "SettingsDep"]
