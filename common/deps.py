"""Typed dependency aliases every service shares; each service's `deps.py` re-exports them.

With the services' `deps.py` modules and the app factory (`common.app`), this is the only
code that reads the state a lifespan stored on the app (`common.state`): routes take its
parts through these aliases, never `request.app.state`. The accessors are `async def` so
FastAPI calls them on the event loop rather than in its thread pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from common.api_clients import ServiceDirectory
from common.config import JiluSettings
from common.database import transaction
from common.errors import Forbidden, Unauthorized
from common.public_urls import port_base_url, web_base_url
from common.security.auth import AuthUser, authenticate, bearer_scheme
from common.security.client_address import client_address
from common.security.rate_limit import RateLimiter
from common.security.tokens import TokenCodec
from common.state import ServiceState

READ_ONLY_METHODS = {"GET", "HEAD", "OPTIONS"}


def service_state(app: Starlette) -> ServiceState:
    """The state `app`'s lifespan built (for the dependencies here, a service's `deps.py`
    and tests). Raises `AttributeError` before the lifespan has run."""
    state: ServiceState = app.state.service_state
    return state


async def _redis(request: Request) -> Redis:
    return service_state(request.app).redis


async def _settings(request: Request) -> JiluSettings:
    return service_state(request.app).settings


async def _services(request: Request) -> ServiceDirectory:
    return service_state(request.app).services


async def _engine(request: Request) -> AsyncEngine:
    return service_state(request.app).engine


async def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    return service_state(request.app).sessionmaker


async def _write_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    return service_state(request.app).write_sessionmaker


async def _tokens(request: Request) -> TokenCodec:
    return service_state(request.app).tokens


async def _rate_limiter(request: Request) -> RateLimiter:
    return service_state(request.app).rate_limiter


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session, the one transaction boundary: requests that may write get a
    write transaction; it commits when the request succeeds and rolls back when it fails."""
    state = service_state(request.app)
    maker = state.sessionmaker if request.method in READ_ONLY_METHODS else state.write_sessionmaker
    async with transaction(maker) as session:
        yield session


async def _client_address(request: Request) -> str:
    return client_address(request, service_state(request.app).settings)


async def _port_base_url(request: Request) -> str:
    state = service_state(request.app)
    return port_base_url(request, state.settings, state.service)


async def _web_base_url(request: Request) -> str:
    state = service_state(request.app)
    return web_base_url(request, state.settings, state.service)


# `scope="function"`: the commit happens before the response is sent, so nothing is
# acknowledged that was not stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
RedisDep = Annotated[Redis, Depends(_redis)]
SettingsDep = Annotated[JiluSettings, Depends(_settings)]
ServicesDep = Annotated[ServiceDirectory, Depends(_services)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
# For work that must not hold the request's transaction open (or must outlive it).
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]
WriteSessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(_write_sessionmaker)]
TokensDep = Annotated[TokenCodec, Depends(_tokens)]
RateLimiterDep = Annotated[RateLimiter, Depends(_rate_limiter)]
# The client's address: the socket peer unless a trusted hop vouches for another one.
ClientAddressDep = Annotated[str, Depends(_client_address)]
# The base URL of the port that answered, and of the web port (share links).
PortBaseUrlDep = Annotated[str, Depends(_port_base_url)]
WebBaseUrlDep = Annotated[str, Depends(_web_base_url)]


async def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> AuthUser:
    """The caller, verified locally (`common.security.auth.authenticate`), within the
    per-user rate (`JILU_RATE_USER`)."""
    if credentials is None:
        raise Unauthorized()
    # The state read once here rather than through five sub-dependencies: this runs on every
    # authenticated request, and each dependency FastAPI resolves costs ~10 µs (issue 11).
    state = service_state(request.app)
    user = await authenticate(
        credentials.credentials,
        request.method,
        tokens=state.tokens,
        redis=state.redis,
        sessionmaker=state.sessionmaker,
        rate_limiter=state.rate_limiter,
        user_rate=state.settings.rate_user,
    )
    request.state.user_id = user.id
    return user


async def admin_user(user: Annotated[AuthUser, Depends(current_user)]) -> AuthUser:
    if not user.is_admin:
        raise Forbidden("administrators only")
    return user


CurrentUser = Annotated[AuthUser, Depends(current_user)]
AdminUser = Annotated[AuthUser, Depends(admin_user)]
