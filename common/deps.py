"""Typed dependency aliases every service shares; each service's `deps.py` re-exports them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from common.api_clients import ServiceDirectory
from common.config import JiluSettings
from common.database import get_session


def _redis(request: Request) -> Redis:
    return request.app.state.redis


def _settings(request: Request) -> JiluSettings:
    return request.app.state.settings


def _services(request: Request) -> ServiceDirectory:
    return request.app.state.services


# `scope="function"`: the commit happens before the response is sent, so nothing is
# acknowledged that was not stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
RedisDep = Annotated[Redis, Depends(_redis)]
SettingsDep = Annotated[JiluSettings, Depends(_settings)]
ServicesDep = Annotated[ServiceDirectory, Depends(_services)]
