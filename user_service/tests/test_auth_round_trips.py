"""An authenticated request asks Redis once (issue 11): the session or the API token, the
account's standing and the per-user rate limit in one script (`common.security.admission`),
counted on the wire as redis-py sends it, on the real Redis; and what that one call decides
is what the separate calls decided before it."""

from __future__ import annotations

import pytest

from common.deps import service_state
from common.security.api_tokens import api_token_cache_key, hash_api_token
from common.security.sessions import standing_key
from tests.round_trips import counting_round_trips
from tests.support import assert_error
from user_service.tests.helpers import Account, Api, MakeApi, bearer, sqlite_only
from user_service.tests.test_rate_limits import assert_rate_limited

pytestmark = sqlite_only


async def _token(api: Api, account: Account, kind: str) -> str:
    if kind == "access token":
        return account.access
    return str((await api.create_api_token(account.access))["token"])


@pytest.mark.parametrize("kind", ["access token", "API token"])
async def test_an_authenticated_request_makes_one_redis_round_trip(api: Api, alice: Account, kind: str) -> None:
    token = await _token(api, alice, kind)
    assert (await api.me(token)).status_code == 200  # the standing cached, the token seen

    with counting_round_trips() as read:
        response = await api.me(token)
    with counting_round_trips() as write:
        patched = await api.client.patch("/api/v1/users/me", json={"display_name": "Al"}, headers=bearer(token))

    assert response.status_code == 200
    assert response.json()["id"] == alice.id
    assert patched.status_code == 200
    assert (read.count, write.count) == (1, 1)


@pytest.mark.parametrize("kind", ["access token", "API token"])
async def test_a_request_past_the_limit_is_refused_in_the_same_round_trip(make_api: MakeApi, kind: str) -> None:
    async with make_api(rate_user="2/minute") as api:
        await api.register("root")
        alice = await api.account("alice")
        api_token = (await api.create_api_token(alice.access))["token"]  # counted: 1
        token = alice.access if kind == "access token" else api_token
        assert (await api.me(token)).status_code == 200  # 2

        with counting_round_trips() as trips:
            blocked = await api.me(token)

        assert_rate_limited(blocked, limit=2, window=60)
        assert trips.count == 1


async def test_both_kinds_of_token_and_both_ways_of_counting_share_one_budget(make_api: MakeApi) -> None:
    async with make_api(rate_user="5/minute") as api:
        await api.register("root")
        alice = await api.account("alice")
        api_token = await _token(api, alice, "API token")  # creating it is a request too: 1
        assert (await api.me(alice.access)).status_code == 200  # 2
        assert (await api.me(api_token)).status_code == 200  # 3
        # Without a cached standing the database is read and the request counted apart
        # (`RateLimiter.check`), on the same window.
        await api.redis.delete(standing_key(alice.id))
        assert (await api.me(api_token)).status_code == 200  # 4
        await api.redis.delete(standing_key(alice.id))
        assert (await api.me(alice.access)).status_code == 200  # 5

        assert_rate_limited(await api.me(alice.access), limit=5, window=60)
        assert_rate_limited(await api.me(api_token), limit=5, window=60)


async def test_a_refused_request_is_not_counted(make_api: MakeApi) -> None:
    async with make_api(rate_user="3/minute") as api:
        await api.register("root")
        alice = await api.account("alice")
        read_only = (await api.create_api_token(alice.access, scopes=["read"]))["token"]  # 1
        for _ in range(4):  # lacks the scope: 403, and nothing counted
            refused = await api.client.patch("/api/v1/users/me", json={"display_name": "x"}, headers=bearer(read_only))
            assert_error(refused, 403, "forbidden")

        assert (await api.me(read_only)).status_code == 200  # 2
        assert (await api.me(alice.access)).status_code == 200  # 3
        assert_rate_limited(await api.me(alice.access), limit=3, window=60)


async def test_an_api_token_seen_before_is_read_again_when_its_cache_runs_out(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access)
    kept = await api.create_api_token(alice.access)
    for token in (created["token"], kept["token"]):
        assert (await api.me(token)).status_code == 200  # this process now knows both

    # Revoked, and its tombstone gone with the rest of the cache (a minute later, or a Redis
    # restart): the database decides, for the one as for the other.
    assert (
        await api.client.delete(f"/api/v1/users/me/api-tokens/{created['id']}", headers=alice.headers)
    ).status_code == 204
    await api.redis.flushdb()

    assert_error(await api.me(created["token"]), 401, "invalid_token")
    assert (await api.me(kept["token"])).status_code == 200
    assert await api.redis.get(api_token_cache_key(hash_api_token(kept["token"]))) is not None  # cached again
    assert await api.redis.get(api_token_cache_key(hash_api_token(created["token"]))) is None


async def test_a_deactivated_account_is_refused_in_one_round_trip_and_not_counted(
    make_api: MakeApi,
) -> None:
    async with make_api(rate_user="3/minute") as api:
        await api.register("root")
        alice = await api.account("alice")
        api_token = await _token(api, alice, "API token")  # 1
        assert (await api.me(api_token)).status_code == 200  # 2
        # As an administrator's deactivation leaves it (`cache_standing`, authoritative).
        await api.redis.set(standing_key(alice.id), "0:user")

        with counting_round_trips() as trips:
            refused = await api.me(api_token)

        assert_error(refused, 403, "forbidden")
        assert trips.count == 1
        await api.redis.set(standing_key(alice.id), "1:user")
        assert (await api.me(api_token)).status_code == 200  # 3: the refusal was not counted
        assert_rate_limited(await api.me(api_token), limit=3, window=60)


async def test_the_script_window_is_the_rate_limiters_own(api: Api) -> None:
    limiter = service_state(api.app).rate_limiter

    await limiter.check("5/minute", "user", "someone")
    await limiter.check("5/minute", "user", "someone")

    window = limiter.fixed_window("5/minute", "user", "someone")
    assert await api.redis.get(window.key) == "2"
    assert 0 < await api.redis.ttl(window.key) <= 60
    assert window.args == (5, 60)
