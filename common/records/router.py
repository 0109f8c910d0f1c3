"""Everything the record domain serves, for the services that serve it (mobile and web)."""

from __future__ import annotations

from fastapi import APIRouter

from common.app import StartupHook
from common.records import purge, routes
from common.records.attachments import routes as attachment_routes
from common.records.sharing import routes as sharing_routes
from common.records.sync import routes as sync_routes
from common.records.transfer import routes as transfer_routes


def records_routers() -> list[APIRouter]:
    return [
        routes.router,
        sharing_routes.router,
        attachment_routes.router,
        attachment_routes.files_router,
        sync_routes.router,
        transfer_routes.router,
    ]


def records_startup_hooks() -> list[StartupHook]:
    return [purge.start_trash_sweeper]
