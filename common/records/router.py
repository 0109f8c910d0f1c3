"""Everything the record domain serves, for the services that serve it (mobile and web)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import APIRouter

from common.records import extraction_routes, purge, routes
from common.records.attachments import routes as attachment_routes
from common.records.sharing import routes as sharing_routes
from common.records.sync import routes as sync_routes
from common.records.transfer import routes as transfer_routes
from common.state import RecordsState, ServiceState, state_fields


def records_routers() -> list[APIRouter]:
    return [
        routes.router,
        sharing_routes.router,
        attachment_routes.router,
        attachment_routes.files_router,
        extraction_routes.router,
        sync_routes.router,
        transfer_routes.router,
    ]


async def start_records(state: ServiceState, stack: AsyncExitStack) -> RecordsState:
    """A `build_state` (`common.app`): what serving records needs running, the trash sweeper."""
    sweeper = purge.start_trash_sweeper(state.write_sessionmaker, state.redis, state.settings, stack)
    return RecordsState(**state_fields(state), trash_sweeper=sweeper)
