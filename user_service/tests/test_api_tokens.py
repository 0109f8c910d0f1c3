"""Personal API tokens: shown once, stored hashed, scoped, expiring, revocable at once."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import assert_error
from user_service.tests.helpers import Account, Api, bearer, sqlite_only

TOKENS = "/api/v1/users/me/api-tokens"
LISTED_FIELDS = {"id", "name", "token_prefix", "scopes", "expires_at", "last_used_at", "created_at"}


async def test_a_new_token_is_shown_once_and_works_as_bearer(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access, name="backup script")

    assert set(created) == {"id", "name", "token", "scopes", "expires_at"}
    assert created["name"] == "backup script"
    assert created["token"].startswith("jilu_pat_")
    assert len(created["token"]) >= len("jilu_pat_") + 40
    assert created["scopes"] == ["read", "write"]
    assert created["expires_at"] is None
    me = await api.me(created["token"])
    assert me.status_code == 200
    assert me.json()["id"] == alice.id
    patched = await api.client.patch(
        "/api/v1/users/me", json={"display_name": "via token"}, headers=bearer(created["token"])
    )
    assert patched.status_code == 200
    assert patched.json()["display_name"] == "via token"


@sqlite_only
async def test_two_tokens_are_different(api: Api, alice: Account) -> None:
    first = await api.create_api_token(alice.access)
    second = await api.create_api_token(alice.access)

    assert first["token"] != second["token"]
    assert first["id"] != second["id"]


async def test_the_listing_never_shows_the_token_only_its_prefix(api: Api, alice: Account) -> None:
    older = await api.create_api_token(alice.access, name="older")
    newer = await api.create_api_token(alice.access, name="newer")

    response = await api.client.get(TOKENS, headers=alice.headers)

    assert response.status_code == 200
    listed = response.json()
    assert [item["id"] for item in listed] == [newer["id"], older["id"]]  # newest first
    for item, created in zip(listed, (newer, older), strict=True):
        assert set(item) == LISTED_FIELDS
        assert item["token_prefix"] == created["token"][: len("jilu_pat_") + 4]
        assert created["token"] not in response.text
        assert created["token"][len(item["token_prefix"]) :] not in response.text


async def test_only_a_hash_of_the_token_is_stored(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access)

    row = await api.api_token_row(created["id"])

    assert row.token_hash == hashlib.sha256(created["token"].encode()).hexdigest()
    stored = " ".join(str(value) for value in vars(row).values())
    assert created["token"] not in stored


async def test_last_used_at_is_set_by_a_use(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access)
    before = (await api.client.get(TOKENS, headers=alice.headers)).json()[0]
    assert before["last_used_at"] is None

    assert (await api.me(created["token"])).status_code == 200

    after = (await api.client.get(TOKENS, headers=alice.headers)).json()[0]
    assert after["last_used_at"] is not None
    used_at = datetime.fromisoformat(after["last_used_at"])
    assert used_at >= datetime.fromisoformat(after["created_at"])


async def test_a_read_only_token_cannot_write(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access, scopes=["read"])
    token = bearer(created["token"])
    assert created["scopes"] == ["read"]

    assert (await api.me(created["token"])).status_code == 200
    assert (await api.client.get(TOKENS, headers=token)).status_code == 200
    assert_error(
        await api.client.patch("/api/v1/users/me", json={"display_name": "x"}, headers=token), 403, "forbidden"
    )
    assert_error(await api.client.post(TOKENS, json={"name": "escalate"}, headers=token), 403, "forbidden")
    assert_error(await api.client.delete(f"{TOKENS}/{created['id']}", headers=token), 403, "forbidden")
    assert (await api.me(alice.access)).json()["display_name"] is None
    assert len((await api.client.get(TOKENS, headers=alice.headers)).json()) == 1


async def test_a_token_with_an_expiry_stops_when_it_has_expired(api: Api, alice: Account) -> None:
    expiring = await api.create_api_token(alice.access, expires_in_days=1)
    lasting = await api.create_api_token(alice.access, expires_in_days=30)
    expires_at = datetime.fromisoformat(expiring["expires_at"])
    assert timedelta(hours=23) < expires_at - datetime.now(UTC) <= timedelta(days=1)
    assert (await api.me(expiring["token"])).status_code == 200

    # A day later: the expiry moved to the past (and the short Redis cache long gone).
    await api.update_api_token_row(expiring["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    await api.redis.flushdb()

    assert_error(await api.me(expiring["token"]), 401, "invalid_token")
    assert (await api.me(lasting["token"])).status_code == 200


@sqlite_only
@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "expires_in_days": 0},
        {"name": "x", "expires_in_days": -1},
        {"name": "x", "expires_in_days": 3651},
        {"name": "x", "scopes": ["admin"]},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": "read"},
        {"name": ""},
        {"name": "x" * 65},
        {},
        {"name": "x", "token": "jilu_pat_chosen-by-the-client"},
        {"name": "x", "user_id": "someone-else"},
    ],
    ids=[
        "expires-0",
        "expires-negative",
        "expires-too-far",
        "unknown-scope",
        "no-scopes",
        "scopes-not-a-list",
        "empty-name",
        "long-name",
        "no-name",
        "extra-token",
        "extra-user-id",
    ],
)
async def test_bad_token_requests_are_422_and_create_nothing(api: Api, alice: Account, body: dict[str, object]) -> None:
    response = await api.client.post(TOKENS, json=body, headers=alice.headers)

    assert_error(response, 422, "validation_error")
    assert (await api.client.get(TOKENS, headers=alice.headers)).json() == []


async def test_a_deleted_token_stops_at_once_although_it_was_cached(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access)
    kept = await api.create_api_token(alice.access)
    assert (await api.me(created["token"])).status_code == 200  # now cached for a minute

    response = await api.client.delete(f"{TOKENS}/{created['id']}", headers=alice.headers)

    assert response.status_code == 204
    assert_error(await api.me(created["token"]), 401, "invalid_token")
    assert [item["id"] for item in (await api.client.get(TOKENS, headers=alice.headers)).json()] == [kept["id"]]
    assert (await api.me(kept["token"])).status_code == 200
    assert_error(await api.client.delete(f"{TOKENS}/{created['id']}", headers=alice.headers), 404, "not_found")


async def test_a_deleted_token_stays_dead_when_the_cache_is_gone(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access)
    assert (await api.client.delete(f"{TOKENS}/{created['id']}", headers=alice.headers)).status_code == 204

    await api.redis.flushdb()

    assert_error(await api.me(created["token"]), 401, "invalid_token")


async def test_a_token_can_delete_itself(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access)
    token = bearer(created["token"])

    assert (await api.client.delete(f"{TOKENS}/{created['id']}", headers=token)).status_code == 204

    assert_error(await api.me(created["token"]), 401, "invalid_token")


async def test_another_users_token_is_404_and_untouched(api: Api, admin: Account, alice: Account) -> None:
    created = await api.create_api_token(alice.access)

    response = await api.client.delete(f"{TOKENS}/{created['id']}", headers=admin.headers)

    assert_error(response, 404, "not_found")
    assert (await api.me(created["token"])).json()["id"] == alice.id
    # ... and invisible to the other user.
    assert (await api.client.get(TOKENS, headers=admin.headers)).json() == []


@sqlite_only
async def test_an_unknown_token_id_is_404(api: Api, alice: Account) -> None:
    response = await api.client.delete(f"{TOKENS}/no-such-token", headers=alice.headers)

    assert_error(response, 404, "not_found")


async def test_an_id_no_token_can_have_is_404_not_a_500(api: Api, alice: Account) -> None:
    """Too long for an id, or with a NUL (a parameter PostgreSQL refuses)."""
    for token_id in ("x" * 37, "a%00b"):
        assert_error(await api.client.delete(f"{TOKENS}/{token_id}", headers=alice.headers), 404, "not_found")


async def test_an_api_token_outlives_the_login_session_that_made_it(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access)

    assert (await api.client.post("/api/v1/auth/logout", headers=alice.headers)).status_code == 204

    assert (await api.me(created["token"])).status_code == 200


@sqlite_only
async def test_an_api_token_is_not_a_refresh_token(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access)

    assert_error(await api.refresh(created["token"]), 401, "invalid_token")


@sqlite_only
async def test_a_user_holds_a_bounded_number_of_tokens(api: Api, alice: Account) -> None:
    for number in range(50):
        await api.create_api_token(alice.access, name=f"token {number}")

    response = await api.client.post(TOKENS, json={"name": "one too many"}, headers=alice.headers)

    assert_error(response, 409, "conflict")
    assert len((await api.client.get(TOKENS, headers=alice.headers)).json()) == 50


async def test_many_tokens_used_at_once_all_work(api: Api, alice: Account) -> None:
    # Each first use also records last_used_at: concurrent writers must queue, not fail.
    tokens = [(await api.create_api_token(alice.access, name=f"t{n}"))["token"] for n in range(5)]

    responses = await asyncio.gather(*(api.me(token) for token in tokens * 2))

    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses if r.status_code != 200]
    listed = (await api.client.get(TOKENS, headers=alice.headers)).json()
    assert all(item["last_used_at"] is not None for item in listed)
