"""Security shared by every service: passwords, tokens, sessions, rate limits, who is calling
(`AuthUser`; the dependencies `CurrentUser` and `AdminUser` are in `common.deps`)."""

from common.security.auth import AuthUser

__all__ = ["AuthUser"]
