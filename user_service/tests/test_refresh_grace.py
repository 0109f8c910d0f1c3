"""The refresh grace window: a refresh token presented again soon after its rotation (a retry
after a lost answer, two requests at once) gets the very same new pair; later, or once that
pair's refresh token was used in turn, it is reuse and ends the session."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from pydantic import ValidationError

from common.config import JiluSettings
from common.security.sessions import session_key
from tests.support import assert_error
from user_service.tests.helpers import PASSWORD, Account, Api, MakeApi, bearer, sqlite_only


def session_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["fam"])


async def test_a_retried_refresh_gets_the_identical_pair_and_both_tokens_work(api: Api, alice: Account) -> None:
    first = await api.refresh(alice.refresh)
    assert first.status_code == 200, first.text

    retried = await api.refresh(alice.refresh)  # the answer to `first` was lost

    assert retried.status_code == 200, retried.text
    assert retried.json() == first.json()  # byte-identical tokens, same expires_in
    pair = retried.json()
    assert pair["refresh_token"] != alice.refresh
    me = await api.me(pair["access_token"])
    assert me.status_code == 200 and me.json()["id"] == alice.id
    rotated = await api.refresh(pair["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert (await api.me(rotated.json()["access_token"])).status_code == 200


async def test_concurrent_refreshes_with_one_token_all_get_the_same_pair(api: Api, alice: Account) -> None:
    responses = await asyncio.gather(*(api.refresh(alice.refresh) for _ in range(5)))

    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    pairs = {(r.json()["access_token"], r.json()["refresh_token"]) for r in responses}
    assert len(pairs) == 1
    ((access, refresh),) = pairs
    assert (await api.me(access)).status_code == 200
    assert (await api.refresh(refresh)).status_code == 200


@sqlite_only
async def test_only_the_token_just_replaced_is_graced(api: Api, alice: Account) -> None:
    middle = (await api.refresh(alice.refresh)).json()
    latest = (await api.refresh(middle["refresh_token"])).json()

    # `middle` is the one `latest` just replaced: replayed, it answers `latest` again.
    assert (await api.refresh(middle["refresh_token"])).json() == latest
    # The first token was replaced by `middle`, which was used in turn: that is reuse.
    assert_error(await api.refresh(alice.refresh), 401, "session_ended")
    assert_error(await api.me(latest["access_token"]), 401, "session_ended")
    assert_error(await api.refresh(latest["refresh_token"]), 401, "session_ended")


async def test_a_replay_after_the_window_revokes_the_family(api: Api, alice: Account) -> None:
    pair = (await api.refresh(alice.refresh)).json()
    other_session = await api.login("alice")
    # The window closed: its deadline (ms) is in the past.
    await api.redis.hset(session_key(session_of(alice.refresh)), "prev_until", int(time.time() * 1000) - 1)

    replay = await api.refresh(alice.refresh)

    detail = assert_error(replay, 401, "session_ended")
    assert "already used" in str(detail)
    assert replay.headers["www-authenticate"].startswith('Bearer realm="jilu", error="invalid_token"')
    assert_error(await api.me(pair["access_token"]), 401, "session_ended")
    assert_error(await api.refresh(pair["refresh_token"]), 401, "session_ended")
    # Another session of the same account is another family.
    assert (await api.me(other_session["access_token"])).status_code == 200


@sqlite_only
async def test_the_window_follows_the_setting(make_api: MakeApi) -> None:
    async with make_api(refresh_grace_seconds=1) as api:
        alice = await api.account("alice")
        pair = (await api.refresh(alice.refresh)).json()
        assert (await api.refresh(alice.refresh)).json() == pair
        prev_until = await api.redis.hget(session_key(session_of(alice.refresh)), "prev_until")
        assert prev_until is not None
        deadline = int(prev_until)
        assert 0 < deadline - time.time() * 1000 <= 1000

        await asyncio.sleep(max(0.0, deadline / 1000 - time.time()) + 0.05)

        assert_error(await api.refresh(alice.refresh), 401, "session_ended")
        assert_error(await api.me(pair["access_token"]), 401, "session_ended")


@sqlite_only
async def test_a_grace_of_zero_is_rotation_as_before(make_api: MakeApi) -> None:
    async with make_api(refresh_grace_seconds=0) as api:
        alice = await api.account("alice")
        pair = (await api.refresh(alice.refresh)).json()
        assert not await api.redis.hexists(session_key(session_of(alice.refresh)), "prev")

        assert_error(await api.refresh(alice.refresh), 401, "session_ended")
        assert_error(await api.me(pair["access_token"]), 401, "session_ended")
        assert_error(await api.refresh(pair["refresh_token"]), 401, "session_ended")


async def test_after_logout_a_replay_is_session_ended(api: Api, alice: Account) -> None:
    pair = (await api.refresh(alice.refresh)).json()
    assert (await api.client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))).status_code == 204

    assert_error(await api.refresh(alice.refresh), 401, "session_ended")
    assert_error(await api.refresh(pair["refresh_token"]), 401, "session_ended")
    assert_error(await api.me(pair["access_token"]), 401, "session_ended")


@sqlite_only
async def test_a_password_change_ends_the_window_too(api: Api, alice: Account) -> None:
    other = await api.login("alice")
    pair = (await api.refresh(other["refresh_token"])).json()
    body = {"current_password": alice.password, "new_password": "a-Fresh-Pass-77"}
    changed = await api.client.post("/api/v1/users/me/password", json=body, headers=alice.headers)
    assert changed.status_code == 204, changed.text

    assert_error(await api.refresh(other["refresh_token"]), 401, "session_ended")
    assert_error(await api.me(pair["access_token"]), 401, "session_ended")


async def change_password_with(api: Api, access_token: str) -> None:
    body = {"current_password": PASSWORD, "new_password": "a-Fresh-Pass-77"}
    changed = await api.client.post("/api/v1/users/me/password", json=body, headers=bearer(access_token))
    assert changed.status_code == 204, changed.text


@sqlite_only
async def test_a_password_change_closes_the_kept_sessions_window(api: Api, alice: Account) -> None:
    pair = (await api.refresh(alice.refresh)).json()  # R0 -> R1, R0 graced for 30 s
    await change_password_with(api, pair["access_token"])  # this session is kept

    # A copy of R0 taken before the change must not buy the live pair: it is plain reuse,
    # which ends the family (RFC 9700 §4.14.2), R1 and the access token with it.
    replay = await api.refresh(alice.refresh)

    assert "already used" in str(assert_error(replay, 401, "session_ended"))
    assert pair["refresh_token"] not in replay.text
    assert_error(await api.refresh(pair["refresh_token"]), 401, "session_ended")
    assert_error(await api.me(pair["access_token"]), 401, "session_ended")


@sqlite_only
async def test_the_kept_session_refreshes_on_after_a_password_change(api: Api, alice: Account) -> None:
    pair = (await api.refresh(alice.refresh)).json()
    await change_password_with(api, pair["access_token"])

    rotated = await api.refresh(pair["refresh_token"])  # R1, the live token, still works

    assert rotated.status_code == 200, rotated.text
    assert (await api.me(rotated.json()["access_token"])).status_code == 200
    # ... and the grace window works again for the rotations after the change.
    assert (await api.refresh(pair["refresh_token"])).json() == rotated.json()


@sqlite_only
async def test_the_session_keeps_ids_and_times_but_no_token(api: Api, alice: Account) -> None:
    pair = (await api.refresh(alice.refresh)).json()

    stored = await api.redis.hgetall(session_key(session_of(alice.refresh)))

    assert set(stored) == {"user_id", "jti", "iat", "prev", "prev_until"}
    claims = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    old = jwt.decode(alice.refresh, options={"verify_signature": False})
    assert (stored["jti"], stored["prev"], int(stored["iat"])) == (claims["jti"], old["jti"], claims["iat"])
    for value in stored.values():
        assert value not in (alice.refresh, pair["refresh_token"], pair["access_token"])
        assert "." not in value  # no JWT, nor any part of one


@sqlite_only
async def test_a_refresh_token_of_another_session_is_not_a_replay(api: Api, alice: Account) -> None:
    """The grace belongs to a session: a token of another family never matches its `prev`."""
    other = await api.login("alice")
    pair = (await api.refresh(alice.refresh)).json()

    assert (await api.refresh(other["refresh_token"])).json() != pair
    assert (await api.refresh(pair["refresh_token"])).status_code == 200


@pytest.mark.parametrize("grace", [-1, 301])
def test_the_grace_setting_is_checked(grace: int) -> None:
    with pytest.raises(ValidationError, match="refresh_grace_seconds"):
        JiluSettings(_env_file=None, refresh_grace_seconds=grace)  # type: ignore[call-arg]
