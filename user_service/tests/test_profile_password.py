"""`/api/v1/users/me`: the caller's profile, and changing the password."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import assert_error
from user_service.tests.helpers import PASSWORD, Account, Api, advance_redis_clock, sqlite_only

ME = "/api/v1/users/me"
NEW_PASSWORD = "Quiet-Harbour-77"


async def change_password(api: Api, access: str, current: str, new: str) -> Any:
    return await api.client.post(
        f"{ME}/password",
        json={"current_password": current, "new_password": new},
        headers={"Authorization": f"Bearer {access}"},
    )


# -- profile -------------------------------------------------------------------------


async def test_read_me(api: Api, alice: Account) -> None:
    response = await api.client.get(ME, headers=alice.headers)

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["username"], body["role"], body["is_active"]) == (alice.id, "alice", "user", True)


async def test_update_me_changes_and_keeps_the_profile(api: Api, alice: Account) -> None:
    changes = {"display_name": "Alice L.", "email": "Alice@Example.com", "language": "en", "time_zone": "Europe/Berlin"}

    response = await api.client.patch(ME, json=changes, headers=alice.headers)

    assert response.status_code == 200, response.text
    expected = {**changes, "email": "alice@example.com"}
    assert {key: response.json()[key] for key in changes} == expected
    stored = (await api.client.get(ME, headers=alice.headers)).json()
    assert {key: stored[key] for key in changes} == expected
    assert stored["updated_at"] >= stored["created_at"]


@sqlite_only
async def test_a_partial_update_leaves_the_rest(api: Api, alice: Account) -> None:
    await api.client.patch(ME, json={"display_name": "Alice", "language": "en"}, headers=alice.headers)

    response = await api.client.patch(ME, json={"time_zone": "UTC"}, headers=alice.headers)

    body = response.json()
    assert (body["display_name"], body["language"], body["time_zone"]) == ("Alice", "en", "UTC")


@sqlite_only
async def test_a_display_name_can_be_cleared(api: Api, alice: Account) -> None:
    await api.client.patch(ME, json={"display_name": "Alice"}, headers=alice.headers)

    response = await api.client.patch(ME, json={"display_name": None}, headers=alice.headers)

    assert response.status_code == 200
    assert response.json()["display_name"] is None


@sqlite_only
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"language": "fr"}, "language"),
        ({"language": None}, "language"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": None}, "time_zone"),
        ({"email": "nope"}, "email"),
        ({"display_name": ""}, "display_name"),
        ({"role": "admin"}, "role"),
        ({"is_active": False}, "is_active"),
        ({"username": "mallory"}, "username"),
        ({"password": "Another-pass-1"}, "password"),
    ],
)
async def test_bad_profile_changes_are_422_and_change_nothing(
    api: Api, alice: Account, body: dict[str, Any], field: str
) -> None:
    before = (await api.client.get(ME, headers=alice.headers)).json()

    response = await api.client.patch(ME, json=body, headers=alice.headers)

    detail = assert_error(response, 422, "validation_error")
    assert field in {item["field"].removeprefix("body.") for item in detail}  # type: ignore[attr-defined]
    assert (await api.client.get(ME, headers=alice.headers)).json() == before


async def test_an_email_someone_else_has_is_409(api: Api, alice: Account) -> None:
    await api.register("bob", email="bob@example.com")

    response = await api.client.patch(ME, json={"email": "BOB@example.com"}, headers=alice.headers)

    assert_error(response, 409, "conflict")
    assert (await api.client.get(ME, headers=alice.headers)).json()["email"] is None


async def test_keeping_ones_own_email_is_fine(api: Api, alice: Account) -> None:
    await api.client.patch(ME, json={"email": "alice@example.com"}, headers=alice.headers)

    response = await api.client.patch(ME, json={"email": "ALICE@example.com"}, headers=alice.headers)

    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"


# -- password ------------------------------------------------------------------------


async def test_a_wrong_current_password_is_400_and_changes_nothing(api: Api, alice: Account) -> None:
    response = await change_password(api, alice.access, "not-my-password-1", NEW_PASSWORD)

    assert_error(response, 400, "bad_request")
    assert (await api.token("alice", PASSWORD)).status_code == 200


@sqlite_only
@pytest.mark.parametrize(
    "weak",
    ["Ab3-xyz", "password123", "zzzzzzzzzz", "ALICE-rules-2", "Ab3-" + "y" * 125],
    ids=["short", "common", "one-character", "contains-username", "129-chars"],
)
async def test_a_weak_new_password_is_422_and_changes_nothing(api: Api, alice: Account, weak: str) -> None:
    response = await change_password(api, alice.access, PASSWORD, weak)

    detail = assert_error(response, 422, "validation_error")
    assert "new_password" in {item["field"].removeprefix("body.") for item in detail}  # type: ignore[attr-defined]
    assert (await api.me(alice.access)).status_code == 200
    assert_error(await api.token("alice", weak), 401, "invalid_credentials")


async def test_a_password_change_ends_the_other_sessions_only(api: Api, alice: Account) -> None:
    other = await api.login("alice")

    response = await change_password(api, alice.access, PASSWORD, NEW_PASSWORD)

    assert response.status_code == 204
    assert_error(await api.me(other["access_token"]), 401, "session_ended")
    assert_error(await api.refresh(other["refresh_token"]), 401, "session_ended")
    # The session that made the change goes on, refresh included.
    assert (await api.me(alice.access)).status_code == 200
    assert (await api.refresh(alice.refresh)).status_code == 200
    assert_error(await api.token("alice", PASSWORD), 401, "invalid_credentials")
    assert (await api.token("alice", NEW_PASSWORD)).status_code == 200


async def test_a_new_password_is_hashed_with_argon2id(api: Api, alice: Account) -> None:
    before = (await api.user_row(alice.id)).password_hash

    assert (await change_password(api, alice.access, PASSWORD, NEW_PASSWORD)).status_code == 204

    after = await api.user_row(alice.id)
    assert after.password_hash.startswith("$argon2id$")
    assert after.password_hash != before
    assert after.password_changed_at is not None


async def test_a_session_kept_alive_by_refreshes_still_ends_on_a_password_change(api: Api, alice: Account) -> None:
    # Alice logged in on a phone nearly a refresh lifetime ago and the app has refreshed
    # every day since, so that session is younger than the login that began it.
    lifetime = api.settings.refresh_token_days * 86400
    await advance_redis_clock(api.redis, lifetime - 3600)
    phone = await api.refresh(alice.refresh)
    assert phone.status_code == 200
    await advance_redis_clock(api.redis, 2 * 3600)
    assert (await api.me(phone.json()["access_token"])).status_code == 200
    # Now she changes her password from her laptop: the phone's session must end too.
    laptop = await api.login("alice")

    assert (await change_password(api, laptop["access_token"], PASSWORD, NEW_PASSWORD)).status_code == 204

    assert_error(await api.me(phone.json()["access_token"]), 401, "session_ended")
    assert_error(await api.refresh(phone.json()["refresh_token"]), 401, "session_ended")
    assert (await api.me(laptop["access_token"])).status_code == 200


@sqlite_only
@pytest.mark.parametrize(
    "body",
    [
        {"current_password": PASSWORD},
        {"new_password": NEW_PASSWORD},
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "user_id": "x"},
    ],
    ids=["no-new", "no-current", "extra-field"],
)
async def test_a_malformed_password_change_is_422(api: Api, alice: Account, body: dict[str, str]) -> None:
    response = await api.client.post(f"{ME}/password", json=body, headers=alice.headers)

    assert_error(response, 422, "validation_error")
    assert (await api.token("alice", PASSWORD)).status_code == 200


@sqlite_only
async def test_profile_routes_need_a_token(api: Api) -> None:
    for method, path in (("GET", ME), ("PATCH", ME), ("POST", f"{ME}/password")):
        response = await api.client.request(method, path, json={})
        assert_error(response, 401, "unauthorized")
