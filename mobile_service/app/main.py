"""mobile_service's app: the mobile app's one base URL."""

from fastapi import FastAPI

from common.app import create_service_app
from common.forwarded import forwarded_routers
from common.records.router import records_routers, start_records
from mobile_service.app.config import MobileSettings, get_settings

__all__ = ["create_app", "get_settings"]


def create_app(settings: MobileSettings | None = None) -> FastAPI:
    return create_service_app(
        "mobile_service",
        settings or get_settings(),
        routers=[*records_routers(), *forwarded_routers()],
        build_state=start_records,
        depends_on=("user", "llm"),
        description="Records, attachments, sync and search, plus the auth and AI endpoints of their owners.",
    )
