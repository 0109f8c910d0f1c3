"""Dependency aliases for web_service's routes: every collaborator a route may take."""

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated

from fastapi import Depends, Request
from starlette.applications import Starlette

from common.deps import CurrentUser, RedisDep, ServicesDep, SessionDep, SettingsDep, service_state
from common.records.sync.service import head_cursor
from common.security.auth import AuthUser, still_signed_in
from common.security.origin import require_same_origin
from web_service.app.config import WebSettings
from web_service.app.events.committed import WaitForCommit, commit_waiter
from web_service.app.events.hub import RecordEventHub
from web_service.app.sessions.service import AccountSessions
from web_service.app.state import WebState


def web_state(app: Starlette) -> WebState:
    """The state web_service's lifespan built (for the dependencies here and for tests)."""
    state = service_state(app)
    if not isinstance(state, WebState):
        raise TypeError(f"{state.service}'s app is not web_service's")
    return state


async def _web_settings(request: Request) -> WebSettings:
    return web_state(request.app).settings


async def _account_sessions(request: Request) -> AccountSessions:
    state = web_state(request.app)
    return AccountSessions(state.services["user"], state.tokens.refresh_lifetime)


async def _record_events(request: Request) -> RecordEventHub:
    return web_state(request.app).record_events


async def _signed_in_check(request: Request) -> Callable[[AuthUser], Awaitable[bool]]:
    state = web_state(request.app)
    return partial(still_signed_in, state.redis, state.sessionmaker)


async def _head_cursor(request: Request) -> Callable[[str], Awaitable[int]]:
    sessionmaker = web_state(request.app).sessionmaker

    async def head(owner_id: str) -> int:
        async with sessionmaker() as session:
            return await head_cursor(session, owner_id)

    return head


async def _commit_waiter(request: Request) -> WaitForCommit:
    return commit_waiter(web_state(request.app).sessionmaker)


async def same_origin(request: Request, settings: SettingsDep) -> None:
    """A dependency: refuse a request not made by a page of the web app's own origin
    (`common.security.origin.require_same_origin`)."""
    require_same_origin(request, settings)


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
    "same_origin",
    "web_state",
]
