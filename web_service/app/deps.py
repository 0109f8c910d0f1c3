"""Dependency aliases for web_service's routes."""

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated

from fastapi import Depends, Request

from common.deps import RedisDep, ServicesDep, SessionDep, SettingsDep
from common.records.sync.service import head_cursor
from common.security.auth import AuthUser, CurrentUser, still_signed_in
from web_service.app.config import WebSettings
from web_service.app.events.committed import WaitForCommit, commit_waiter
from web_service.app.events.hub import RecordEventHub
from web_service.app.sessions.service import AccountSessions


def _web_settings(request: Request) -> WebSettings:
    return request.app.state.settings


def _account_sessions(request: Request) -> AccountSessions:
    state = request.app.state
    return AccountSessions(state.services["user"], state.tokens.refresh_lifetime)


def _record_events(request: Request) -> RecordEventHub:
    return request.app.state.record_events


def _signed_in_check(request: Request) -> Callable[[AuthUser], Awaitable[bool]]:
    state = request.app.state
    return partial(still_signed_in, state.redis, state.sessionmaker)


def _head_cursor(request: Request) -> Callable[[str], Awaitable[int]]:
    sessionmaker = request.app.state.sessionmaker

    async def head(owner_id: str) -> int:
        async with sessionmaker() as session:
            return await head_cursor(session, owner_id)

    return head


def _commit_waiter(request: Request) -> WaitForCommit:
    return commit_waiter(request.app.state.sessionmaker)


WebSettingsDep = Annotated[WebSettings, Depends(_web_settings)]
AccountSessionsDep = Annotated[AccountSessions, Depends(_account_sessions)]
RecordEventsDep = Annotated[RecordEventHub, Depends(_record_events)]
# `await check(user)`: whether the user's credentials still stand (for long-lived answers).
SignedInCheckDep = Annotated[Callable[[AuthUser], Awaitable[bool]], Depends(_signed_in_check)]
# `await head(owner_id)`: the owner's sync cursor now, in a session of its own (not held open).
HeadCursorDep = Annotated[Callable[[str], Awaitable[int]], Depends(_head_cursor)]
# `await wait(event)`: returns once the event's change is visible in the database (bounded).
CommitWaitDep = Annotated[WaitForCommit, Depends(_commit_waiter)]

__all__ = [
    "AccountSessionsDep",
    "CommitWaitDep",
    "CurrentUser",
    "HeadCursorDep",
    "RecordEventsDep",
    "RedisDep",
    "ServicesDep",
    "SessionDep",
    "SettingsDep",
    "SignedInCheckDep",
    "WebSettingsDep",
]
