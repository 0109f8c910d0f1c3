"""`/api/v1/admin`: listing users, changing roles, deactivating — and nobody else may."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from tests.support import assert_error
from user_service.app.config import UserSettings
from user_service.app.main import create_app
from user_service.tests.helpers import Account, Api, bearer, sqlite_only

USERS = "/api/v1/admin/users"


def admin_route_table() -> list[tuple[str, str]]:
    """(method, path) of every route under /api/v1/admin, read from the app itself, so a
    route added later is in the table without anyone editing this test."""
    app = create_app(UserSettings(_env_file=None, env="test"))  # type: ignore[call-arg]
    # FastAPI keeps included routers nested in `app.routes`; this walks into them.
    routes = list(iter_route_contexts(app.routes))
    return sorted(
        (method, str(route.path))
        for route in routes
        if isinstance(route.original_route, APIRoute) and str(route.path).startswith("/api/v1/admin")
        for method in route.methods or ()
    )


ADMIN_ROUTES = admin_route_table()


def fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def cursor_of(moment: str, row_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([moment, row_id]).encode()).decode().rstrip("=")


async def patch_user(api: Api, admin: Account, user_id: str, **changes: Any) -> Any:
    return await api.client.patch(f"{USERS}/{user_id}", json=changes, headers=admin.headers)


# -- who may -------------------------------------------------------------------------


def test_the_route_table_is_read_from_the_app() -> None:
    assert ("GET", "/api/v1/admin/users") in ADMIN_ROUTES
    assert ("PATCH", "/api/v1/admin/users/{user_id}") in ADMIN_ROUTES


@sqlite_only
async def test_every_admin_route_refuses_a_plain_user_and_a_stranger(api: Api, admin: Account, alice: Account) -> None:
    read_only_admin = bearer((await api.create_api_token(admin.access, scopes=["read"]))["token"])
    for method, path in ADMIN_ROUTES:
        url = fill(path, alice.id)  # a real user's id, so a refusal is not a 404 in disguise
        body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None

        assert_error(await api.client.request(method, url, json=body, headers=alice.headers), 403, "forbidden")
        stranger = await api.client.request(method, url, json=body)
        assert_error(stranger, 401, "unauthorized")
        assert stranger.headers["www-authenticate"] == 'Bearer realm="jilu"'
        if method not in ("GET", "HEAD", "OPTIONS"):
            refused = await api.client.request(method, url, json=body, headers=read_only_admin)
            assert_error(refused, 403, "forbidden")

    # The positive control: the same requests from the administrator get through.
    for method, path in ADMIN_ROUTES:
        body = {} if method in ("POST", "PUT", "PATCH") else None
        allowed = await api.client.request(method, fill(path, alice.id), json=body, headers=admin.headers)
        assert allowed.status_code < 400, (method, path, allowed.text)
    assert (await api.me(alice.access)).json()["role"] == "user"


# -- listing -------------------------------------------------------------------------


async def test_the_user_list_is_paginated_newest_first(api: Api, admin: Account, alice: Account) -> None:
    for name in ("bob", "carol", "dave"):
        await api.register(name)

    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await api.client.get(USERS, params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10, "the cursor never ends"

    assert [len(items) for items in pages] == [2, 2, 1]
    names = [user["username"] for items in pages for user in items]
    assert names == ["dave", "carol", "bob", "alice", "root"]
    stamps = [datetime.fromisoformat(user["created_at"]) for items in pages for user in items]
    assert stamps == sorted(stamps, reverse=True)


async def test_the_default_page_holds_every_user_here(api: Api, admin: Account, alice: Account) -> None:
    response = await api.client.get(USERS, headers=admin.headers)

    assert response.status_code == 200
    assert [user["username"] for user in response.json()["items"]] == ["alice", "root"]
    assert response.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("CAR", ["carol"]),
        ("dragon", ["bob"]),
        ("example.org", ["dave", "carol"]),
        ("nobody", []),
    ],
    ids=["username-any-case", "display-name", "email", "no-match"],
)
@sqlite_only
async def test_the_user_list_is_searchable(api: Api, admin: Account, q: str, expected: list[str]) -> None:
    await api.register("bob", display_name="Dragon Rider")
    await api.register("carol", email="carol@example.org")
    await api.register("dave", email="dave@EXAMPLE.org")

    response = await api.client.get(USERS, params={"q": q}, headers=admin.headers)

    assert response.status_code == 200, response.text
    assert [user["username"] for user in response.json()["items"]] == expected


@sqlite_only
@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"limit": 201}, 422),
        ({"limit": 0}, 422),
        ({"limit": "ten"}, 422),
        ({"q": "x" * 65}, 422),
        ({"cursor": "garbage!"}, 422),
        ({"cursor": "x" * 201}, 422),
        ({"cursor": cursor_of("not a time", "x")}, 422),
        ({"cursor": cursor_of("2020-01-01T00:00:00", "x")}, 422),  # a time without a zone
        ({"cursor": base64.urlsafe_b64encode(b'{"a": 1}').decode()}, 422),
    ],
    ids=["limit-201", "limit-0", "limit-text", "long-q", "garbage", "long-cursor", "bad-time", "naive-time", "object"],
)
async def test_bad_list_parameters_are_4xx_not_500(
    api: Api, admin: Account, params: dict[str, Any], status: int
) -> None:
    response = await api.client.get(USERS, params=params, headers=admin.headers)

    assert_error(response, status, "validation_error" if status == 422 else "bad_request")
    if "cursor" in params:  # a malformed cursor names its parameter, like every other bad one
        assert [problem["field"] for problem in response.json()["detail"]] == ["query.cursor"]


async def test_a_well_formed_cursor_from_elsewhere_is_accepted(api: Api, admin: Account) -> None:
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()

    response = await api.client.get(USERS, params={"cursor": cursor_of(future, "z")}, headers=admin.headers)

    assert response.status_code == 200
    assert [user["username"] for user in response.json()["items"]] == ["root"]


# -- changing users ------------------------------------------------------------------


async def test_promotion_and_demotion_take_effect_on_live_tokens(api: Api, admin: Account, alice: Account) -> None:
    assert_error(await api.client.get(USERS, headers=alice.headers), 403, "forbidden")

    promoted = await patch_user(api, admin, alice.id, role="admin")

    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    assert (await api.client.get(USERS, headers=alice.headers)).status_code == 200
    assert (await api.me(alice.access)).json()["role"] == "admin"

    demoted = await patch_user(api, admin, alice.id, role="user")

    assert demoted.json()["role"] == "user"
    assert_error(await api.client.get(USERS, headers=alice.headers), 403, "forbidden")


async def test_deactivation_refuses_every_token_at_once_and_reactivation_restores(
    api: Api, admin: Account, alice: Account
) -> None:
    api_token = (await api.create_api_token(alice.access))["token"]
    assert (await api.me(api_token)).status_code == 200

    response = await patch_user(api, admin, alice.id, is_active=False)

    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert_error(await api.me(api_token), 403, "forbidden")
    # Deactivation also ends every login session: the access token's session is gone (401),
    # its refresh token with it, and logging in again is refused as deactivated (403).
    assert_error(await api.me(alice.access), 401, "session_ended")
    assert_error(await api.refresh(alice.refresh), 401, "session_ended")
    assert_error(await api.token("alice"), 403, "forbidden")
    # Losing Redis's cache of the user's standing does not let them back in.
    await api.redis.flushdb()
    assert_error(await api.me(api_token), 403, "forbidden")

    admin_pair = await api.login("root")  # the flush ended the admin's session too
    restored = await api.client.patch(
        f"{USERS}/{alice.id}", json={"is_active": True}, headers=bearer(admin_pair["access_token"])
    )

    assert restored.status_code == 200
    assert restored.json()["is_active"] is True
    assert (await api.me(api_token)).status_code == 200
    relogin = await api.login("alice")
    assert (await api.me(relogin["access_token"])).status_code == 200


@sqlite_only
async def test_an_unknown_user_is_404(api: Api, admin: Account) -> None:
    response = await patch_user(api, admin, "no-such-user", is_active=False)

    assert_error(response, 404, "not_found")


@sqlite_only
@pytest.mark.parametrize("change", [{"role": "user"}, {"is_active": False}, {"role": "user", "is_active": False}])
async def test_an_admin_cannot_demote_or_deactivate_themselves(
    api: Api, admin: Account, change: dict[str, Any]
) -> None:
    response = await patch_user(api, admin, admin.id, **change)

    assert_error(response, 409, "conflict")
    me = (await api.me(admin.access)).json()
    assert (me["role"], me["is_active"]) == ("admin", True)


@pytest.mark.parametrize(
    "body",
    [
        {"role": "superuser"},
        {"is_active": "maybe"},
        {"is_active": 0},  # read as False by Pydantic's lax bool (found by tests/fuzz)
        {"is_active": "false"},
        {"password": "new-password-1"},
        {"username": "renamed"},
    ],
    ids=["unknown-role", "not-a-bool", "a-number-for-a-bool", "text-for-a-bool", "password", "username"],
)
@sqlite_only
async def test_bad_admin_changes_are_422_and_change_nothing(
    api: Api, admin: Account, alice: Account, body: dict[str, Any]
) -> None:
    response = await api.client.patch(f"{USERS}/{alice.id}", json=body, headers=admin.headers)

    assert_error(response, 422, "validation_error")
    me = (await api.me(alice.access)).json()
    assert (me["username"], me["role"], me["is_active"]) == ("alice", "user", True)


async def test_one_admin_may_deactivate_another(api: Api, admin: Account, alice: Account) -> None:
    await patch_user(api, admin, alice.id, role="admin")

    response = await api.client.patch(f"{USERS}/{admin.id}", json={"is_active": False}, headers=alice.headers)

    assert response.status_code == 200
    assert_error(await api.client.get(USERS, headers=admin.headers), 401, "session_ended")
