"""Dependency aliases for llm_service's routes."""

from typing import Annotated

from fastapi import Depends, Request

from common.deps import RedisDep, ServicesDep, SessionDep, SettingsDep
from common.security import AdminUser, AuthUser, CurrentUser
from llm_service.app.budgets import BudgetGuard


def _budgets(request: Request) -> BudgetGuard:
    return request.app.state.budgets


BudgetsDep = Annotated[BudgetGuard, Depends(_budgets)]

__all__ = [
    "AdminUser",
    "AuthUser",
    "BudgetsDep",
    "CurrentUser",
    "RedisDep",
    "ServicesDep",
    "SessionDep",
    "SettingsDep",
]
