"""Isolation: a second user reaches nothing of the first, on every route of both ports.

- Every route naming a record, attachment or share slug answers the second user 404 and
  changes nothing of the first user's; every route but the public ones wants a token; the
  public ones show the PublicRecord fields only.
- The collections (list, trash, tags, search, sync feed, export) of the second user hold
  nothing of the first's; ids in a body (client ids, sync push, import) reach nothing of theirs.
- Mass assignment: columns only the server writes, in a create, an edit or a sync push, are
  refused (422, `rejected`) and nothing is stored.

The route table is read from the mobile and web apps themselves (and from the Flask app the
web port mounts), so a route added later is tested without anyone editing this file; a route
this file cannot classify (an unknown path parameter, a body it cannot fill, a new route
without an id) fails `test_every_route_is_classified` with what to add here.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import inspect, select
from starlette.routing import Mount

from common.deps import service_state
from common.records.attachments.storage import AttachmentStorage
from common.records.models import Attachment, Record
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.records.attachment_support import image_bytes
from tests.records.conftest import PORTS, RECORDS, Account, RecordsStack
from tests.support import assert_error
from web_service.app.config import WebSettings
from web_service.app.main import create_app as create_web_app

# -- the route table ------------------------------------------------------------------------

# Relayed as they are to user_service and llm_service (which test their own isolation).
FORWARDED_PREFIXES = (
    "/api/v1/auth",
    "/api/v1/users",
    "/api/v1/admin",
    "/api/v1/chat",
    "/api/v1/memories",
    "/api/v1/digests",
    "/api/v1/llm",
)
SERVICE_PATHS = ("/health", "/docs", "/openapi.json", "/metrics")  # and what lies under them

# Path parameter → which of the first user's objects fill it (see `World.targets`).
PATH_PARAMETERS = {"record_id": "record", "attachment_id": "attachment", "slug": "slug"}

# Routes taking an id that anyone may call, on purpose: they show PublicRecord fields only.
PUBLIC_ROUTES = {("GET", "/api/v1/public/{slug}")}
PUBLIC_PAGES = {("GET", "/s/{slug}")}  # Flask, on the web port
PUBLIC_RECORD_KEYS = {"kind", "title", "content", "tags", "occurred_at", "updated_at"}
# Flask pages and files that hold no user data: the web app itself.
STATIC_PAGES = {
    ("GET", "/"),
    ("GET", "/index.html"),
    ("GET", "/sw.js"),
    ("GET", "/manifest.webmanifest"),
    ("GET", "/favicon.ico"),
    ("GET", "/assets/{version}/{path}"),
}
# Routes of the web port whose scoping is shown by tests of their own (an endless event
# stream cannot be requested here; the session routes act on the caller's cookie alone).
TESTED_ELSEWHERE = {
    (
        "GET",
        "/api/v1/events",
    ): "web_service/tests/test_events.py::test_the_callers_own_changes_arrive_live_and_nobody_elses",
    ("POST", "/api/v1/auth/session"): "web_service/tests/test_sessions.py",
    # Signed attachment URLs: no token, the signature names the owner and the attachment.
    ("GET", "/api/v1/files/{attachment_id}/{variant}"): "tests/records/test_signed_urls.py",
    ("POST", "/api/v1/auth/session/refresh"): "web_service/tests/test_sessions.py",
    ("DELETE", "/api/v1/auth/session"): "web_service/tests/test_sessions.py",
}
# Single routes the ports relay as they are to the service that owns them (which checks the
# token and the owner, and tests that itself). Not running here, so the ports answer 503: what
# this file shows is that they do not act on such a route themselves.
RELAYED_ROUTES = {("POST", f"{RECORDS}/{{record_id}}/analyze"): "llm_service"}

# Routes without an id in their path, each answering from the caller's data alone; the value
# is a request that would succeed for a logged-in caller, and the test showing the scoping.
CALLER_SCOPED_ROUTES: dict[tuple[str, str], tuple[dict[str, Any], str]] = {
    ("POST", RECORDS): ({"json": {"content": "x"}}, "test_server_fields_in_a_create_are_refused"),
    ("GET", RECORDS): ({}, "test_collections_of_the_second_user_hold_nothing_of_the_first"),
    ("GET", "/api/v1/trash"): ({}, "test_collections_of_the_second_user_hold_nothing_of_the_first"),
    ("GET", "/api/v1/tags"): ({}, "test_collections_of_the_second_user_hold_nothing_of_the_first"),
    ("GET", "/api/v1/search"): (
        {"params": {"q": "x"}},
        "test_collections_of_the_second_user_hold_nothing_of_the_first",
    ),
    ("GET", "/api/v1/sync/changes"): ({}, "test_collections_of_the_second_user_hold_nothing_of_the_first"),
    ("POST", "/api/v1/sync/push"): (
        {"json": {"items": [{"id": str(uuid.uuid4()), "op": "upsert", "data": {"content": "x"}}]}},
        "test_ids_in_a_body_reach_nothing_of_the_first_user",
    ),
    ("GET", "/api/v1/export"): ({}, "test_collections_of_the_second_user_hold_nothing_of_the_first"),
    ("POST", "/api/v1/import"): (
        {"files": {"file": ("x.zip", b"PK\x05\x06" + bytes(18))}},
        "test_ids_in_a_body_reach_nothing_of_the_first_user",
    ),
}

PNG = image_bytes("PNG", (64, 48))
THEIR_PNG = image_bytes("PNG", (40, 30))  # the second user's own file: other bytes


@dataclass(frozen=True)
class Target:
    """What a call is about: the filled path parameters, and the versions of records named."""

    params: dict[str, str]
    versions: dict[str, int]

    def version(self) -> int:
        return self.versions[self.params["record_id"]]


# Routes needing a body: the one the first user could send with success.
BODIES: dict[tuple[str, str], Callable[[Target], dict[str, Any]]] = {
    ("PATCH", f"{RECORDS}/{{record_id}}"): lambda t: {
        "json": {"title": "taken over", "version": t.version()},
        "headers": {"If-Match": f'"{t.version()}"'},
    },
    ("POST", f"{RECORDS}/{{record_id}}/attachments"): lambda t: {"files": {"file": ("planted.png", PNG, "image/png")}},
}
# Query strings worth trying on a route besides none.
QUERIES: dict[tuple[str, str], list[dict[str, str]]] = {
    ("GET", "/api/v1/attachments/{attachment_id}"): [{"thumb": "1"}]
}


@dataclass(frozen=True)
class Route:
    port: str
    method: str
    path: str  # `{name}` for each parameter
    params: tuple[str, ...]
    kind: str  # "owned" (404 to anyone else), "public", "public-page", "caller" or "relayed"
    regex: re.Pattern[str] = field(compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    def __str__(self) -> str:
        return f"{self.port}: {self.method} {self.path}"


def _classify(
    port: str, method: str, path: str, params: tuple[str, ...], *, needs_body: bool, relayed: bool
) -> str | None:
    """The route's kind, or raise `LookupError` telling the developer what to add here."""
    where = f"{port}: {method} {path}"
    if relayed != ((method, path) in RELAYED_ROUTES):
        raise LookupError(
            f"{where} is relayed to another service: list it in RELAYED_ROUTES in tests/records/test_isolation.py "
            "(and test its isolation in the service that owns it)"
            if relayed
            else f"{where} is listed in RELAYED_ROUTES but the port serves it itself: take it out of RELAYED_ROUTES"
        )
    if relayed:
        return "relayed"
    if (method, path) in STATIC_PAGES or (method, path) in TESTED_ELSEWHERE:
        return None
    unknown = [p for p in params if p not in PATH_PARAMETERS]
    if (method, path) in PUBLIC_ROUTES | PUBLIC_PAGES:
        return "public" if (method, path) in PUBLIC_ROUTES else "public-page"
    if unknown:
        raise LookupError(
            f"{where}: path parameter(s) {unknown} are not classified. Add each to PATH_PARAMETERS in "
            "tests/records/test_isolation.py (which of the first user's objects fills it), or list the "
            "route in PUBLIC_ROUTES if anyone may call it on purpose."
        )
    if params:
        if needs_body and (method, path) not in BODIES:
            raise LookupError(f"{where} takes a body: add one the owner could send with success to BODIES.")
        return "owned"
    if (method, path) in CALLER_SCOPED_ROUTES:
        return "caller"
    raise LookupError(
        f"{where} is not classified: add it to CALLER_SCOPED_ROUTES in tests/records/test_isolation.py with a "
        "request that succeeds and a test showing that it answers from the caller's data only."
    )


def _api_routes(port: str, app: FastAPI) -> Iterator[Route | str]:
    for route in iter_route_contexts(app.routes):
        original, path = route.original_route, str(route.path_format)
        if isinstance(original, Mount):
            yield from _flask_routes(port, original)
            continue
        if any(path == p or path.startswith(p + "/") for p in SERVICE_PATHS):
            continue
        if not isinstance(original, APIRoute):
            yield f"{port}: {type(original).__name__} {path} is neither an API route nor known: classify it here"
            continue
        if not original.include_in_schema and any(path == p or path.startswith(p + "/") for p in FORWARDED_PREFIXES):
            continue
        needs_body = original.body_field is not None or "requestBody" in (original.openapi_extra or {})
        for method in sorted(route.methods or ()):
            params = tuple(route.param_convertors)
            try:
                kind = _classify(
                    port, method, path, params, needs_body=needs_body, relayed=not original.include_in_schema
                )
            except LookupError as problem:
                yield str(problem)
                continue
            if kind is not None:
                yield Route(port, method, path, params, kind, route.path_regex)


def _flask_routes(port: str, mount: Mount) -> Iterator[Route | str]:
    flask_app = getattr(mount.app, "app", None)
    url_map = getattr(flask_app, "url_map", None)
    if mount.path != "" or url_map is None:
        yield f"{port}: the mount {mount.path or '/'} is not the web app's Flask app: classify its routes here"
        return
    for rule in url_map.iter_rules():
        if rule.endpoint == "static":
            continue  # the web app's own files
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            params = tuple(sorted(rule.arguments))
            try:
                kind = _classify(port, method, path, params, needs_body=False, relayed=False)
            except LookupError as problem:
                yield str(problem)
                continue
            if kind is not None:
                regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
                yield Route(port, method, path, params, kind, regex)


def route_table(apps: dict[str, FastAPI]) -> tuple[list[Route], list[str]]:
    """Every route of the ports, classified, and the problems of those that could not be."""
    found = [item for port in PORTS for item in _api_routes(port, apps[port])]
    return [r for r in found if isinstance(r, Route)], [p for p in found if isinstance(p, str)]


def test_every_route_is_classified(make_settings: Callable[..., Any]) -> None:
    apps = {
        "mobile": create_mobile_app(make_settings(MobileSettings)),
        "web": create_web_app(make_settings(WebSettings)),
    }
    routes, problems = route_table(apps)
    assert not problems, "\n".join(problems)
    table = {(r.port, r.method, r.path): r.kind for r in routes}
    # The walk reaches into the included routers (else every test below would pass vacuously).
    for port in PORTS:
        for method, path in [
            ("GET", f"{RECORDS}/{{record_id}}"),
            ("PATCH", f"{RECORDS}/{{record_id}}"),
            ("DELETE", f"{RECORDS}/{{record_id}}"),
            ("POST", f"{RECORDS}/{{record_id}}/attachments"),
            ("GET", f"{RECORDS}/{{record_id}}/share"),
            ("POST", f"{RECORDS}/{{record_id}}/share"),
            ("DELETE", f"{RECORDS}/{{record_id}}/share"),
            ("POST", f"{RECORDS}/{{record_id}}/purge"),
            ("POST", f"{RECORDS}/{{record_id}}/restore"),
            ("GET", "/api/v1/attachments/{attachment_id}"),
            ("DELETE", "/api/v1/attachments/{attachment_id}"),
        ]:
            assert table.get((port, method, path)) == "owned", (port, method, path)
        assert table.get((port, "GET", "/api/v1/public/{slug}")) == "public"
        assert {(m, p) for (o, m, p), kind in table.items() if o == port and kind == "caller"} == set(
            CALLER_SCOPED_ROUTES
        )
    assert table.get(("web", "GET", "/s/{slug}")) == "public-page"
    assert not any(kind == "owned" and not params for kind, params in ((r.kind, r.params) for r in routes))


# -- the first user's world -----------------------------------------------------------------


@dataclass
class World:
    """The first user's live record (with an attachment, shared), deleted record (with an
    attachment) and the second user's own record with a file of its own."""

    owner: Account
    stranger: Account
    live: dict[str, Any]
    trashed_id: str
    slug: str
    theirs: dict[str, Any]
    trashed_attachment_id: str

    @property
    def attachment_id(self) -> str:
        return str(self.live["attachments"][0]["id"])

    def targets(self, names: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
        """Every combination of the first user's objects for those parameters, labelled."""
        candidates = {
            "record": [("live record", self.live["id"]), ("deleted record", self.trashed_id)],
            "attachment": [
                ("attachment", self.attachment_id),
                ("attachment of the deleted record", self.trashed_attachment_id),
            ],
            "slug": [("share slug", self.slug)],
        }
        combos = itertools.product(*(candidates[PATH_PARAMETERS[name]] for name in names))
        return [
            (", ".join(label for label, _ in combo), dict(zip(names, (v for _, v in combo), strict=True)))
            for combo in combos
        ]


async def upload(client: httpx.AsyncClient, account: Account, record_id: str, data: bytes) -> dict[str, Any]:
    files = {"file": ("photo.png", data, "image/png")}
    response = await client.post(f"{RECORDS}/{record_id}/attachments", files=files, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def world(records_stack: RecordsStack, records_owner: Account, records_stranger: Account) -> World:
    api, owner = records_stack.mobile, records_owner
    live = await records_stack.create(
        api, owner, title="体检报告 zebracorn", content="今天下午开会讨论预算 quixotic", tags=["health", "机密"]
    )
    await upload(api, owner, live["id"], PNG)
    share = await api.post(f"{RECORDS}/{live['id']}/share", headers=owner.headers)
    assert share.status_code == 201, share.text
    trashed = await records_stack.create(api, owner, content="deleted but not yet purged zebracorn")
    trashed_attachment = await upload(api, owner, trashed["id"], PNG)
    assert (await api.delete(f"{RECORDS}/{trashed['id']}", headers=owner.headers)).status_code == 204
    theirs = await records_stack.create(api, records_stranger, content="my own walk 散步", tags=["own"])
    await upload(api, records_stranger, theirs["id"], THEIR_PNG)
    live = (await api.get(f"{RECORDS}/{live['id']}", headers=owner.headers)).json()
    theirs = (await api.get(f"{RECORDS}/{theirs['id']}", headers=records_stranger.headers)).json()
    return World(owner, records_stranger, live, trashed["id"], share.json()["slug"], theirs, trashed_attachment["id"])


def columns(row: Record) -> dict[str, Any]:
    return {attr.key: getattr(row, attr.key) for attr in inspect(Record).column_attrs}


async def owner_state(stack: RecordsStack, world: World) -> dict[str, Any]:
    """Everything of the first user's a stranger's call could change, read as the owner and from the database."""
    api, owner, mine = stack.mobile, world.owner, (world.live["id"], world.trashed_id)
    storage = AttachmentStorage(service_state(stack.apps["mobile"]).settings.data_dir)
    async with stack.sessionmaker() as session:
        statement = select(Attachment.id, Attachment.record_id, Attachment.sha256).where(
            Attachment.owner_id == owner.id
        )
        attachments = sorted(tuple(row) for row in (await session.execute(statement)).all())
    download = await api.get(f"/api/v1/attachments/{world.attachment_id}", headers=owner.headers)
    thumbnail = await api.get(f"/api/v1/attachments/{world.attachment_id}?thumb=1", headers=owner.headers)
    return {
        "record as the owner reads it": (await api.get(f"{RECORDS}/{world.live['id']}", headers=owner.headers)).json(),
        "rows": {rid: columns(await stack.record_row(rid)) for rid in (world.live["id"], world.trashed_id)},
        "attachment rows": attachments,
        "files": sorted((p.name, p.stat().st_size) for p in (storage.root / owner.id).rglob("*") if p.is_file()),
        "download": (download.status_code, hashlib.sha256(download.content).hexdigest()),
        "thumbnail": thumbnail.status_code,
        "events": [e for e in await stack.events() if e["owner_id"] == owner.id or e["record_id"] in mine],
    }


def request_for(route: Route, params: dict[str, str], versions: dict[str, int]) -> tuple[str, dict[str, Any]]:
    url = route.path.format(**params)
    assert route.regex.match(url), f"{url} does not reach {route}"
    kwargs = BODIES[route.key](Target(params, versions)) if route.key in BODIES else {}
    return url, kwargs


async def call(
    client: httpx.AsyncClient,
    route: Route,
    url: str,
    kwargs: dict[str, Any],
    headers: dict[str, str],
    query: dict[str, str],
) -> httpx.Response:
    return await client.request(
        route.method,
        url,
        **{
            **kwargs,
            "params": {**kwargs.get("params", {}), **query},
            "headers": {**kwargs.get("headers", {}), **headers},
        },
    )


# -- routes taking an id: 404 to the second user, 401 without a token ------------------------


# What the second user may get from a route naming the first user's id. `relayed` routes reach
# the service that owns them: 404 from it, or 503 when it is not running (as here).
STRANGER_ANSWERS = {"owned": {(404, "not_found")}, "relayed": {(404, "not_found"), (503, "service_unavailable")}}


async def test_a_second_user_gets_404_on_every_route_that_takes_the_first_users_id(
    records_stack: RecordsStack, world: World
) -> None:
    routes, problems = route_table(records_stack.apps)
    assert not problems, "\n".join(problems)
    # The second user keeps the first user's bytes too, so a lookup that forgot the owner
    # would find a file of theirs to send.
    await upload(records_stack.mobile, world.stranger, world.theirs["id"], PNG)
    theirs = (await records_stack.mobile.get(f"{RECORDS}/{world.theirs['id']}", headers=world.stranger.headers)).json()
    taking_ids = [r for r in routes if r.kind in STRANGER_ANSWERS]
    assert len([r for r in taking_ids if r.kind == "owned"]) >= 18, taking_ids
    before = await owner_state(records_stack, world)
    versions = {rid: row["version"] for rid, row in before["rows"].items()}
    failures, table = [], []
    for route in taking_ids:
        expected = STRANGER_ANSWERS[route.kind]
        for label, params in world.targets(route.params):
            url, kwargs = request_for(route, params, versions)
            for query in [{}, *QUERIES.get(route.key, [])]:
                response = await call(
                    records_stack.clients[route.port], route, url, kwargs, world.stranger.headers, query
                )
                table.append(f"{route}{'?' + '&'.join(query) if query else ''} [{label}] → {response.status_code}")
                is_json = "json" in response.headers.get("content-type", "")
                if (response.status_code, response.json().get("error") if is_json else None) not in expected:
                    shown = response.text[:200] if is_json else "(a file)"
                    failures.append(f"{table[-1]}, expected one of {sorted(expected)}: {shown}")
                after = await owner_state(records_stack, world)
                if after != before:
                    changed = [key for key in before if before[key] != after[key]]
                    failures.append(f"{table[-1]} changed the first user's {changed}")
                    before = after
    print("\n".join(table))  # the generated table, for `pytest -s`
    assert not failures, "\n".join(failures)
    # The share still works, for anyone, after all that.
    public = await records_stack.web.get(f"/api/v1/public/{world.slug}")
    assert public.status_code == 200 and public.json()["title"] == world.live["title"]
    # And the second user's own things are still theirs (no call touched the wrong account).
    mine = await records_stack.mobile.get(f"{RECORDS}/{world.theirs['id']}", headers=world.stranger.headers)
    assert mine.json() == theirs


async def test_every_route_but_the_public_ones_wants_a_token(records_stack: RecordsStack, world: World) -> None:
    """Relayed routes are left out: the service that owns them checks the token."""
    routes, _ = route_table(records_stack.apps)
    state = await owner_state(records_stack, world)
    versions = {rid: row["version"] for rid, row in state["rows"].items()}
    checked = 0
    for route in routes:
        if route.kind == "owned":
            requests = [request_for(route, params, versions) for _, params in world.targets(route.params)]
        elif route.kind == "caller":
            requests = [(route.path, CALLER_SCOPED_ROUTES[route.key][0])]
        else:
            continue
        for url, kwargs in requests:
            for headers in ({}, {"Authorization": "Bearer not-a-token"}):
                response = await call(records_stack.clients[route.port], route, url, kwargs, headers, {})
                assert_error(response, 401, "invalid_token" if headers else "unauthorized")
                checked += 1
    assert checked >= 2 * (18 + 2 * len(CALLER_SCOPED_ROUTES))
    assert await owner_state(records_stack, world) == state


async def test_public_routes_show_only_the_public_fields(records_stack: RecordsStack, world: World) -> None:
    routes, _ = route_table(records_stack.apps)
    public = [r for r in routes if r.kind in ("public", "public-page")]
    assert {(r.port, r.key) for r in public} == {
        *((port, key) for port in PORTS for key in PUBLIC_ROUTES),
        *(("web", key) for key in PUBLIC_PAGES),
    }
    owner_row = await records_stack.record_row(world.live["id"])
    secrets_of_the_record = [
        world.live["id"],
        world.owner.id,
        world.attachment_id,
        world.live["attachments"][0]["sha256"],
    ]
    for route in public:
        for label, params in world.targets(route.params):
            url = route.path.format(**params)
            assert route.regex.match(url)
            for headers in ({}, world.stranger.headers):
                response = await records_stack.clients[route.port].request(route.method, url, headers=headers)
                assert response.status_code == 200, (str(route), label, response.text)
                if route.kind == "public":
                    body = response.json()
                    assert set(body) == PUBLIC_RECORD_KEYS, body
                    assert body["title"] == world.live["title"] and body["content"] == world.live["content"]
                text = response.text
                for secret in secrets_of_the_record:
                    assert secret not in text, (str(route), secret)
    assert owner_row.share_slug == world.slug


# -- collections: the second user's hold nothing of the first's --------------------------------


def owner_marks(world: World) -> list[str]:
    return [
        world.live["id"],
        world.trashed_id,
        world.attachment_id,
        world.trashed_attachment_id,
        "zebracorn",
        "quixotic",
        "体检报告",
        "开会讨论预算",
    ]


async def collections(api: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    """What `account` sees through every collection route."""

    async def get(path: str, **params: Any) -> Any:
        response = await api.get(path, params=params, headers=account.headers)
        assert response.status_code == 200, response.text
        return response

    searches = {}
    for q in ("zebracorn", "体检", "开会", "预算", "quixotic", "预算 quixotic", "health"):
        searches[q] = [hit["record"]["id"] for hit in (await get("/api/v1/search", q=q)).json()["items"]]
    changes, since = [], 0
    while True:
        page = (await get("/api/v1/sync/changes", since=since, limit=1)).json()
        changes += [change["id"] for change in page["changes"]]
        since = page["cursor"]
        if not page["has_more"]:
            break
    export = await get("/api/v1/export")
    return {
        "records": [r["id"] for r in (await get(RECORDS, limit=200)).json()["items"]],
        "tagged health": [r["id"] for r in (await get(RECORDS, tag="health")).json()["items"]],
        "trash": [r["id"] for r in (await get("/api/v1/trash", limit=200)).json()["items"]],
        "tags": (await get("/api/v1/tags")).json(),
        "searches": searches,
        "changes": changes,
        "export": zipfile.ZipFile(io.BytesIO(export.content)),
    }


async def test_collections_of_the_second_user_hold_nothing_of_the_first(
    records_api: httpx.AsyncClient, world: World
) -> None:
    owners = await collections(records_api, world.owner)
    # The marks are there to be found by the owner, so their absence below means something.
    assert world.live["id"] in owners["records"] and owners["tagged health"] == [world.live["id"]]
    assert {"name": "health", "count": 1} in owners["tags"]
    assert owners["trash"] == [world.trashed_id]
    assert all(world.live["id"] in ids for ids in owners["searches"].values()), owners["searches"]
    assert {world.live["id"], world.trashed_id} <= set(owners["changes"])
    assert PNG in [owners["export"].read(name) for name in owners["export"].namelist()]

    theirs = await collections(records_api, world.stranger)
    assert theirs["records"] == [world.theirs["id"]]
    assert theirs["tagged health"] == []
    assert theirs["trash"] == []
    assert theirs["tags"] == [{"name": "own", "count": 1}]
    assert theirs["searches"] == {q: [] for q in owners["searches"]}
    assert theirs["changes"] == [world.theirs["id"]]
    archive = theirs["export"]
    assert json.loads(archive.read("records.json"))[0]["id"] == world.theirs["id"]
    assert len(json.loads(archive.read("records.json"))) == 1
    for name in archive.namelist():
        data = archive.read(name)
        assert data != PNG and hashlib.sha256(PNG).hexdigest() not in name, name
        for mark in owner_marks(world):
            assert mark.encode() not in data and mark not in name, (name, mark)
    assert THEIR_PNG in [archive.read(name) for name in archive.namelist()]
    # The owner's file, straight: not the second user's to download, whole or as a thumbnail.
    # (Its signed URLs are links that need no token: they are only ever in the owner's answers,
    # and one signed for the second user opens nothing of the first's: tests/records/test_signed_urls.py.)
    attachment_id = world.live["attachments"][0]["id"]
    for url in (f"/api/v1/attachments/{attachment_id}", f"/api/v1/attachments/{attachment_id}?thumb=1"):
        assert_error(await records_api.get(url, headers=world.stranger.headers), 404, "not_found")


async def test_ids_in_a_body_reach_nothing_of_the_first_user(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, world: World
) -> None:
    """Ids travel in bodies too: a create with a client id, a sync push, an import."""
    before = await owner_state(records_stack, world)
    stranger, live_version = world.stranger.headers, before["rows"][world.live["id"]]["version"]
    for record_id in (world.live["id"], world.trashed_id):
        response = await records_api.post(RECORDS, json={"id": record_id, "content": "mine"}, headers=stranger)
        detail = assert_error(response, 409, "conflict")
        assert "zebracorn" not in str(detail) and world.owner.id not in str(detail)

    unknown = str(uuid.uuid4())
    items = [
        {"id": world.live["id"], "op": "upsert", "base_version": live_version, "data": {"title": "taken over"}},
        {"id": world.live["id"], "op": "delete", "base_version": live_version},
        {"id": world.live["id"], "op": "upsert", "base_version": 0, "data": {"content": "mine now"}},
        {"id": world.trashed_id, "op": "upsert", "base_version": 0, "data": {"content": "mine now"}},
        {"id": world.trashed_id, "op": "delete", "base_version": before["rows"][world.trashed_id]["version"]},
        {"id": unknown, "op": "upsert", "base_version": 1, "data": {"title": "x"}},  # names nothing at all
    ]
    response = await records_api.post("/api/v1/sync/push", json={"items": items}, headers=stranger)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["rejected"] * len(items), results
    # One answer whatever the id names: nothing tells the first user's records from no record.
    assert len({r["error"] for r in results}) == 1 and all(r["record"] is None for r in results), results

    archived = {
        "id": world.live["id"],
        "content": "imported over the owner's",
        "occurred_at": "2024-05-01T08:00:00+00:00",
        **{k: v for k, v in server_fields(world.owner.id).items() if k not in ("created_at", "updated_at")},
        "shared": True,
        "ai": {"status": "done", "title": "planted", "summary": "planted", "tags": ["planted"]},
    }
    response = await records_api.post("/api/v1/import", files={"file": ("x.zip", zip_of(archived))}, headers=stranger)
    assert response.status_code == 200, response.text
    assert response.json() == {"records": 1, "attachments": 0, "renamed": 1, "skipped": 0}
    (imported,) = [
        r for r in (await records_api.get(RECORDS, headers=stranger)).json()["items"] if r["id"] != world.theirs["id"]
    ]
    assert imported["id"] not in (world.live["id"], world.trashed_id)
    assert (imported["version"], imported["shared"], imported["ai"]["status"]) == (1, False, "pending")
    changes = (await records_api.get("/api/v1/sync/changes", headers=stranger)).json()["changes"]
    assert {c["id"] for c in changes} == {world.theirs["id"], imported["id"]}
    row = await records_stack.record_row(imported["id"])
    assert (row.owner_id, row.is_deleted, row.share_slug, row.ai_title) == (world.stranger.id, False, None, None)

    assert await owner_state(records_stack, world) == before


def zip_of(*records: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("records.json", json.dumps(list(records)))
    return out.getvalue()


# -- mass assignment: what only the server writes cannot come in a body ----------------------

# Record columns a client may write; every other column is the server's.
CLIENT_COLUMNS = {"id", "kind", "title", "content", "tags", "occurred_at", "ai_opt_out"}


def server_fields(other_user_id: str) -> dict[str, Any]:
    """A value to try for each column only the server writes, and the shape's server keys."""
    return {
        "owner_id": other_user_id,
        "device_id": "planted-device",
        "version": 41,
        "change_seq": 999_999,
        "is_deleted": True,
        "deleted_at": "2024-01-01T00:00:00+00:00",
        "purged_at": "2024-01-01T00:00:00+00:00",
        "share_slug": "plantedSlug0123456789abcdef",
        "ai_status": "done",
        "ai_title": "planted",
        "ai_summary": "planted",
        "ai_tags": ["planted"],
        "ai_error": "planted",
        "push_fingerprint": "f" * 64,
        "created_at": "2001-01-01T00:00:00+00:00",
        "updated_at": "2001-01-01T00:00:00+00:00",
        "extraction_status": "done",
        "extraction_engine": "planted",
        "extraction_error": "planted",
        "extraction_details": {"url": "http://169.254.169.254/"},
        "extracted_text": "planted",
        "extracted_index": "planted",
        "extraction_requested_at": "2001-01-01T00:00:00+00:00",
    }


SHAPE_ONLY_FIELDS: dict[str, Any] = {
    "shared": True,
    "attachments": [],
    "ai": {"status": "done", "title": "planted", "summary": "planted", "tags": []},
    "extraction": {"status": "done", "engine": "planted", "error": None},
}


def test_every_server_column_is_tried() -> None:
    server_columns = {attr.key for attr in inspect(Record).column_attrs} - CLIENT_COLUMNS
    assert server_columns == set(server_fields("x")), (
        "Record's columns changed: add a new server-written column to server_fields() in "
        "tests/records/test_isolation.py (or to CLIENT_COLUMNS if clients may write it)"
    )


def planted(other_user_id: str, *, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    fields = {**server_fields(other_user_id), **SHAPE_ONLY_FIELDS}
    return {k: v for k, v in fields.items() if k not in leave_out}


async def test_server_fields_in_a_create_are_refused(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    for name, value in planted(records_owner.id).items():
        record_id = str(uuid.uuid4())
        body = {"id": record_id, "content": "planted", name: value}
        response = await records_api.post(RECORDS, json=body, headers=records_stranger.headers)
        assert_error(response, 422, "validation_error")
        assert name in response.text, response.text  # the field at fault is named
    assert await records_stack.record_count() == 0
    assert await records_stack.events() == []
    # The same body without the server's field is a good one: the field alone was refused.
    await records_stack.create(records_api, records_stranger, id=str(uuid.uuid4()), content="planted")


async def test_server_fields_in_an_edit_are_refused(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    record = await records_stack.create(records_api, records_owner, content="mine")
    url, headers = f"{RECORDS}/{record['id']}", records_owner.headers
    row, events = columns(await records_stack.record_row(record["id"])), await records_stack.events()
    fields = {**planted(records_stranger.id, leave_out=("version",)), "id": str(uuid.uuid4())}
    for name, value in fields.items():
        response = await records_api.patch(url, json={"version": 1, "title": "changed", name: value}, headers=headers)
        assert_error(response, 422, "validation_error")
        assert name in response.text, response.text
    assert columns(await records_stack.record_row(record["id"])) == row
    assert await records_stack.events() == events
    assert await records_stack.record_count(records_stranger.id) == 0
    response = await records_api.patch(url, json={"version": 1, "title": "changed"}, headers=headers)
    assert response.status_code == 200 and response.json()["version"] == 2


async def test_server_fields_in_a_sync_push_are_rejected(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    record = await records_stack.create(records_api, records_owner, content="mine")
    row, events = columns(await records_stack.record_row(record["id"])), await records_stack.events()
    creates = [
        {"id": str(uuid.uuid4()), "op": "upsert", "base_version": 0, "data": {"content": "planted", name: value}}
        for name, value in planted(records_stranger.id).items()
    ]
    updates = [
        {"id": record["id"], "op": "upsert", "base_version": 1, "data": {"title": "changed", name: value}}
        for name, value in {**planted(records_stranger.id, leave_out=("version",)), "id": str(uuid.uuid4())}.items()
    ]
    for items in (creates, updates):
        response = await records_api.post("/api/v1/sync/push", json={"items": items}, headers=records_owner.headers)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["rejected"] * len(items), results
        for item, result in zip(items, results, strict=True):
            (name,) = set(item["data"]) - {"content", "title"}
            assert name in result["error"], result
    assert await records_stack.record_count() == 1
    assert columns(await records_stack.record_row(record["id"])) == row
    assert await records_stack.events() == events
    # Without the server's fields the same items apply.
    good = [{**creates[0], "data": {"content": "planted"}}, {**updates[0], "data": {"title": "changed"}}]
    response = await records_api.post("/api/v1/sync/push", json={"items": good}, headers=records_owner.headers)
    assert [r["status"] for r in response.json()["results"]] == ["applied", "applied"], response.text
