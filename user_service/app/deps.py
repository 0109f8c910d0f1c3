"""Dependency aliases for user_service's routes."""

from typing import Annotated

from fastapi import Depends, Request

from common.deps import RedisDep, ServicesDep, SessionDep, SettingsDep
from common.security import AdminUser, AuthUser, CurrentUser
from common.security.rate_limit import RateLimiter
from common.security.tokens import TokenCodec


def _tokens(request: Request) -> TokenCodec:
    return request.app.state.tokens


def _rate_limiter(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter


TokensDep = Annotated[TokenCodec, Depends(_tokens)]
RateLimiterDep = Annotated[RateLimiter, Depends(_rate_limiter)]

__all__ = [
    "AdminUser",
    "AuthUser",
    "CurrentUser",
    "RateLimiterDep",
    "RedisDep",
    "ServicesDep",
    "SessionDep",
    "SettingsDep",
    "TokensDep",
]
