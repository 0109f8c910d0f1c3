"""One JSON error shape on every service, for 404, 405, 422 and 500, with request id and headers."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from a2wsgi import WSGIMiddleware
from fastapi import APIRouter, FastAPI
from flask import Flask
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.routing import Mount

from common.database import engine as engine_module
from common.deps import SessionDep, service_state
from common.errors import RateLimited
from tests.common.conftest import SERVICES
from tests.support import SECURITY_HEADERS, WEB_APP_SECURITY_HEADERS, app_client, assert_error, assert_problems

SECRET_MESSAGE = "database password is hunter2"


class Item(BaseModel):
    name: str
    count: int = Field(ge=1)


def with_test_routes(app: FastAPI) -> FastAPI:
    async def crash() -> None:
        raise RuntimeError(SECRET_MESSAGE)

    async def create_item(item: Item) -> Item:
        return item

    async def limited() -> None:
        raise RateLimited(30)

    app.add_api_route("/test/crash", crash)
    app.add_api_route("/test/items", create_item, methods=["POST"])
    app.add_api_route("/test/limited", limited)
    # web_service mounts Flask at "/" for every other path: keep that mount last.
    app.router.routes.sort(key=lambda route: isinstance(route, Mount))
    return app


@pytest.fixture(params=list(SERVICES))
def app(request: pytest.FixtureRequest, build_app: Callable[..., FastAPI]) -> FastAPI:
    return with_test_routes(build_app(request.param))


async def test_unknown_path_is_404(app: FastAPI) -> None:
    # On the web port, Flask answers every path the API does not claim, with the web app's headers.
    headers = WEB_APP_SECURITY_HEADERS if app.title == "Jilu web_service" else SECURITY_HEADERS
    async with app_client(app) as client:
        detail = assert_error(await client.get("/no/such/page"), 404, "not_found", headers)
    assert isinstance(detail, str) and detail


@pytest.mark.parametrize(("method", "path"), [("POST", "/health"), ("DELETE", "/health"), ("GET", "/test/items")])
async def test_wrong_method_is_405(app: FastAPI, method: str, path: str) -> None:
    async with app_client(app) as client:
        assert_error(await client.request(method, path), 405, "method_not_allowed")


async def test_invalid_body_is_422_naming_each_field(app: FastAPI) -> None:
    valid = {"name": "笔记", "count": 2}
    async with app_client(app) as client:
        invalid = await client.post("/test/items", json={"count": 0})
        not_json = await client.post("/test/items", content=b"{not", headers={"content-type": "application/json"})
        accepted = await client.post("/test/items", json=valid)
    detail = assert_error(invalid, 422, "validation_error")
    assert isinstance(detail, list)
    assert {problem["field"] for problem in detail} == {"body.name", "body.count"}
    assert all(problem["message"] and problem["type"] for problem in detail)
    assert_error(not_json, 422, "validation_error")
    assert accepted.json() == valid


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"name": "\xc3(", "count": 2}', "not UTF-8 text (byte 10"),
        (b"\x80abc", "not UTF-8 text (byte 0"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=["invalid-utf8", "invalid-start-byte", "nested-too-deeply"],
)
async def test_an_undecodable_json_body_is_the_documented_422(app: FastAPI, body: bytes, reason: str) -> None:
    # Found by Schemathesis (tests/fuzz): FastAPI answers such bodies 400 "There was an error
    # parsing the body", a status no operation documents; they are malformed JSON like `{not`.
    async with app_client(app) as client:
        response = await client.post("/test/items", content=body, headers={"content-type": "application/json"})
    (problem,) = assert_problems(response)
    assert problem["field"] == "body" and problem["type"] == "json_invalid"
    assert problem["message"].startswith("malformed JSON: the body is " + reason), problem


async def test_unhandled_exception_is_a_bare_500(app: FastAPI) -> None:
    async with app_client(app) as client:
        response = await client.get("/test/crash", headers={"X-Request-ID": "crash-1"})
    assert_error(response, 500, "internal_error")
    assert response.json() == {"error": "internal_error", "detail": "Internal server error"}
    assert "Traceback" not in response.text and "hunter2" not in response.text
    assert response.headers["x-request-id"] == "crash-1"


async def test_jilu_errors_keep_their_code_and_headers(app: FastAPI) -> None:
    async with app_client(app) as client:
        response = await client.get("/test/limited")
    assert_error(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "30"


def flask_app_of(app: FastAPI) -> Flask:
    (mount,) = [route for route in app.routes if isinstance(route, Mount)]
    middleware = mount.app
    assert isinstance(middleware, WSGIMiddleware)
    flask_app = middleware.app  # the WSGI app inside a2wsgi's middleware
    assert isinstance(flask_app, Flask)
    return flask_app


async def test_web_service_flask_pages_share_the_error_shape(build_app: Callable[..., FastAPI]) -> None:
    app = build_app("web")
    flask_app = flask_app_of(app)

    def crash() -> str:
        raise RuntimeError(SECRET_MESSAGE)

    flask_app.add_url_rule("/test-flask-crash", view_func=crash)
    async with app_client(app) as client:
        page = await client.get("/")
        assert page.status_code == 200 and "Jilu" in page.text
        assert_error(await client.get("/no-such-page.html"), 404, "not_found", WEB_APP_SECURITY_HEADERS)
        assert_error(await client.post("/"), 405, "method_not_allowed", WEB_APP_SECURITY_HEADERS)
        crashed = await client.get("/test-flask-crash")
    assert_error(crashed, 500, "internal_error", WEB_APP_SECURITY_HEADERS)
    assert "hunter2" not in crashed.text and "Traceback" not in crashed.text


async def test_a_busy_database_answers_503_with_retry_after(build_app, migrated_database_url, tmp_path) -> None:
    """A write that cannot take SQLite's lock within busy_timeout is 'try again', not a 500."""
    if not migrated_database_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock")
    router = APIRouter()

    @router.post("/busy")
    async def busy(session: SessionDep) -> dict[str, str]:
        await session.execute(text("PRAGMA busy_timeout=50"))
        await session.execute(text("CREATE TABLE IF NOT EXISTS test_busy (x INTEGER)"))
        return {"ok": "yes"}

    app = build_app("mobile", database_url=migrated_database_url)
    app.include_router(router)
    holder = sqlite3.connect(migrated_database_url.split("///", 1)[1], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        async with app_client(app) as client:
            response = await client.post("/busy")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_error(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "1"


async def test_a_writer_whose_turn_does_not_come_answers_503(
    build_app, migrated_database_url, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process's writers queue for its one SQLite write connection; one that waits longer
    than `WRITE_QUEUE_TIMEOUT` (a stuck writer has it) is 'try again', not a 500."""
    if not migrated_database_url.startswith("sqlite"):
        pytest.skip("SQLite's write connection")
    monkeypatch.setattr(engine_module, "WRITE_QUEUE_TIMEOUT", 0.2)
    router = APIRouter()

    @router.post("/write")
    async def write(session: SessionDep) -> dict[str, str]:
        await session.execute(text("CREATE TABLE IF NOT EXISTS test_queue (x INTEGER)"))
        return {"ok": "yes"}

    app = build_app("mobile", database_url=migrated_database_url)
    app.include_router(router)
    async with app_client(app) as client:
        async with service_state(app).write_sessionmaker() as stuck, stuck.begin():
            await stuck.execute(text("SELECT 1"))  # holds the write connection, and the lock
            response = await client.post("/write")
        assert (await client.post("/write")).status_code == 200  # its turn, once the writer is done
    assert_error(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "1"
