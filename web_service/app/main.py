"""web_service's app: the web API (FastAPI) with the Flask web app mounted under it."""

from contextlib import AsyncExitStack
from pathlib import Path

from a2wsgi import WSGIMiddleware
from fastapi import FastAPI
from starlette.routing import Match, Mount
from starlette.types import Scope

from common.app import create_service_app
from common.forwarded import forwarded_routers
from common.records.router import records_routers, start_records
from common.state import ServiceState, state_fields
from web_service.app.config import WebSettings, get_settings
from web_service.app.events.hub import start_record_events
from web_service.app.events.routes import router as events_router
from web_service.app.sessions.routes import router as sessions_router
from web_service.app.state import WebState
from web_service.app.web import STATIC_DIR, create_flask_app
from web_service.app.web.share import SharedRecords

__all__ = ["create_app", "get_settings"]


class FallbackMount(Mount):
    """A mount that only takes what no API route claims.

    A plain `Mount("/")` fully matches every path, so a wrong method on an API route (whose
    match is partial) would reach Flask and answer 404; as a partial match itself, the API
    route's 405 wins and Flask still gets every path the API does not know.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        return (Match.PARTIAL if match is Match.FULL else match), child_scope


def create_app(settings: WebSettings | None = None, *, static_dir: Path = STATIC_DIR) -> FastAPI:
    """The app; the web app's files are read from `static_dir` once, now."""
    # The share pages (Flask, in worker threads) read records on this app's event loop.
    shared_records = SharedRecords()

    async def build_state(base: ServiceState, stack: AsyncExitStack) -> WebState:
        records = await start_records(base, stack)
        shared_records.bind(records.rate_limiter, records.sessionmaker, records.settings, stack)
        events = start_record_events(records.settings.redis_url, stack)
        return WebState(**state_fields(records), record_events=events)

    app = create_service_app(
        "web_service",
        settings or get_settings(),
        # The browser sessions come before the relay of /api/v1/auth/* to user_service.
        routers=[sessions_router, events_router, *records_routers(), *forwarded_routers()],
        build_state=build_state,
        depends_on=("user", "llm"),
        description="The web API; the web app and public share pages are served by Flask on the same port.",
    )
    # Mounted last: the API routes above take precedence, Flask gets every other path.
    flask_app = WSGIMiddleware(create_flask_app(shared_records, static_dir))  # type: ignore[arg-type]
    app.router.routes.append(FallbackMount("/", app=flask_app))  # type: ignore[arg-type]
    return app
