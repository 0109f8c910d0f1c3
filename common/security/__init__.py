"""Security shared by every service: passwords, tokens, sessions, rate limits, `CurrentUser`."""

from common.security.auth import AdminUser, AuthUser, CurrentUser

__all__ = ["AdminUser", "AuthUser", "CurrentUser"]
