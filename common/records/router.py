"""Everything the record domain serves, for the services that serve it (mobile and web)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from common.app import StartupHook
from common.records import purge, routes
from common.records.attachments import routes as attachment_routes
from common.records.attachments.links import bind_attachment_links
from common.records.sharing import routes as sharing_routes
from common.records.sync import routes as sync_routes
from common.records.transfer import routes as transfer_routes


def _with_attachment_links(router: APIRouter) -> APIRouter:
    """`router`, its answers carrying signed, absolute attachment URLs for the answering port."""
    wrapper = APIRouter(dependencies=[Depends(bind_attachment_links)])
    wrapper.include_router(router)
    return wrapper


def records_routers() -> list[APIRouter]:
    return [
        _with_attachment_links(routes.router),
        sharing_routes.router,
        _with_attachment_links(attachment_routes.router),
        attachment_routes.files_router,
        _with_attachment_links(sync_routes.router),
        transfer_routes.router,  # the export keeps the bearer paths: signed URLs would expire
    ]


def records_startup_hooks() -> list[StartupHook]:
    return [purge.start_trash_sweeper]
