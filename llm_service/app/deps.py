"""Dependency aliases for llm_service's routes: every collaborator a route may take."""

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from starlette.applications import Starlette

from common.database import Sessions
from common.deps import (
    AdminUser,
    CurrentUser,
    RedisDep,
    ServicesDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
    service_state,
)
from common.security import AuthUser
from llm_service.app.budgets import BudgetGuard
from llm_service.app.chat.service import ChatService
from llm_service.app.providers.registry import ProviderRegistry
from llm_service.app.state import LlmState


def llm_state(app: Starlette) -> LlmState:
    """The state llm_service's lifespan built (for the dependencies here and for tests)."""
    state = service_state(app)
    if not isinstance(state, LlmState):
        raise TypeError(f"{state.service}'s app is not llm_service's")
    return state


async def _budgets(request: Request) -> BudgetGuard:
    return llm_state(request.app).budgets


async def _providers(request: Request) -> ProviderRegistry:
    return llm_state(request.app).providers


async def _chat(request: Request) -> ChatService:
    return llm_state(request.app).chat


async def _sessions(request: Request) -> Sessions:
    return llm_state(request.app).sessions


async def _short_term(request: Request) -> timedelta:
    return timedelta(days=llm_state(request.app).settings.memory_short_term_days)


BudgetsDep = Annotated[BudgetGuard, Depends(_budgets)]
ProvidersDep = Annotated[ProviderRegistry, Depends(_providers)]
# One per process, made at start-up.
ChatDep = Annotated[ChatService, Depends(_chat)]
# Both sessionmakers, for work that must not hold a transaction open while a provider answers.
SessionsDep = Annotated[Sessions, Depends(_sessions)]
# How long a short-term memory lives (`JILU_MEMORY_SHORT_TERM_DAYS`).
ShortTermDep = Annotated[timedelta, Depends(_short_term)]

__all__ = [
    "AdminUser",
    "AuthUser",
    "BudgetsDep",
    "ChatDep",
    "CurrentUser",
    "ProvidersDep",
    "RedisDep",
    "ServicesDep",
    "SessionDep",
    "SessionmakerDep",
    "SessionsDep",
    "SettingsDep",
    "ShortTermDep",
    "llm_state",
]
