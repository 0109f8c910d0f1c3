"""Rate limits on login, registration and every authenticated request; the client address
they count by; and what happens when Redis is gone (login fails closed)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from common.deps import service_state
from common.security.keys import derive_key, sign
from common.security.passwords import hash_password_sync
from common.security.tokens import TokenCodec
from common.users.models import User
from tests.support import assert_error, free_port
from user_service.tests.helpers import PASSWORD, Api, MakeApi, bearer, sqlite_only

pytestmark = sqlite_only

WRONG = "not-the-password-1"


def assert_rate_limited(response: httpx.Response, limit: int, window: int) -> int:
    """The 429 contract: error shape, Retry-After within the window, RateLimit headers."""
    assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window
    match = re.fullmatch(r"limit=(\d+), remaining=(\d+), reset=(\d+)", response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    assert (int(match[1]), int(match[2])) == (limit, 0)
    assert 1 <= int(match[3]) <= window
    assert response.headers["ratelimit-policy"] == f"{limit};w={window}"
    return retry_after


async def test_logins_for_one_username_meet_429(make_api: MakeApi) -> None:
    async with make_api(rate_login_user="3/minute") as api:
        await api.register("Alice")
        for typed in ("alice", "ALICE", "Alice"):  # one budget, whatever the case
            assert_error(await api.token(typed, WRONG), 401, "invalid_credentials")

        blocked = await api.token("alice", PASSWORD)  # even the right password now

        assert_rate_limited(blocked, limit=3, window=60)
        # Another username has its own budget.
        assert_error(await api.token("bob", WRONG), 401, "invalid_credentials")


async def test_a_successful_login_tells_the_remaining_budget(make_api: MakeApi) -> None:
    async with make_api(rate_login_user="3/minute") as api:
        await api.register("alice")

        response = await api.token("alice")

        assert response.status_code == 200
        assert response.headers["ratelimit"].startswith("limit=3, remaining=2, reset=")
        assert response.headers["ratelimit-policy"] == "3;w=60"


async def test_rotating_usernames_and_x_forwarded_for_meets_the_address_limit(make_api: MakeApi) -> None:
    async with make_api(rate_login_address="3/minute") as api:
        for attempt in range(3):
            response = await api.token(f"user{attempt}", WRONG, headers={"X-Forwarded-For": f"203.0.113.{attempt}"})
            assert_error(response, 401, "invalid_credentials")

        blocked = await api.token("user9", WRONG, headers={"X-Forwarded-For": "203.0.113.9"})

        assert_rate_limited(blocked, limit=3, window=60)


async def test_x_forwarded_for_from_a_trusted_proxy_tells_clients_apart(make_api: MakeApi) -> None:
    # The positive control of the test above: the in-process client is 127.0.0.1.
    async with make_api(rate_login_address="3/minute", trusted_proxies=["127.0.0.1/32"]) as api:
        for attempt in range(4):
            response = await api.token(f"user{attempt}", WRONG, headers={"X-Forwarded-For": f"203.0.113.{attempt}"})
            assert_error(response, 401, "invalid_credentials")
        # One client behind the proxy: what it wrote before the proxy's hop is not believed,
        # and trusted hops are skipped.
        for attempt in range(3):
            spoofed = {"X-Forwarded-For": f"198.51.100.{attempt}, 203.0.113.50"}
            assert_error(await api.token(f"other{attempt}", WRONG, headers=spoofed), 401, "invalid_credentials")

        blocked = await api.token("other9", WRONG, headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.50, 127.0.0.1"})

        assert_rate_limited(blocked, limit=3, window=60)


async def test_an_unsigned_client_address_header_is_ignored(make_api: MakeApi) -> None:
    async with make_api(rate_login_address="3/minute") as api:
        for attempt in range(3):
            address = f"203.0.113.{attempt}"
            headers = {"X-Jilu-Client-Address": address, "X-Jilu-Client-Signature": "0" * 64}
            assert_error(await api.token(f"user{attempt}", WRONG, headers=headers), 401, "invalid_credentials")

        forged = {"X-Jilu-Client-Address": "203.0.113.9", "X-Jilu-Client-Signature": sign("guess", "x", "y")}
        blocked = await api.token("user9", WRONG, headers=forged)

        assert_rate_limited(blocked, limit=3, window=60)


async def test_a_client_address_signed_by_a_jilu_service_is_believed(make_api: MakeApi) -> None:
    # The positive control: what web and mobile send when they forward a request.
    async with make_api(rate_login_address="3/minute") as api:
        for attempt in range(5):
            signed = f"203.0.113.{attempt};{int(time.time())}"
            headers = {
                "X-Jilu-Client-Address": signed,
                "X-Jilu-Client-Signature": sign(api.settings.secret, "client-address", signed),
            }
            assert_error(await api.token(f"user{attempt}", WRONG, headers=headers), 401, "invalid_credentials")


async def test_a_replayed_old_client_address_signature_is_ignored(make_api: MakeApi) -> None:
    # A header captured once must not let anyone pose as other addresses later.
    async with make_api(rate_login_address="3/minute") as api:
        for attempt in range(3):
            signed = f"203.0.113.{attempt};{int(time.time()) - 3600}"
            headers = {
                "X-Jilu-Client-Address": signed,
                "X-Jilu-Client-Signature": sign(api.settings.secret, "client-address", signed),
            }
            assert_error(await api.token(f"user{attempt}", WRONG, headers=headers), 401, "invalid_credentials")
        signed = f"203.0.113.9;{int(time.time()) - 3600}"
        stale = {
            "X-Jilu-Client-Address": signed,
            "X-Jilu-Client-Signature": sign(api.settings.secret, "client-address", signed),
        }

        assert_rate_limited(await api.token("user9", WRONG, headers=stale), limit=3, window=60)


async def test_password_change_attempts_meet_the_login_limit(make_api: MakeApi) -> None:
    async with make_api(rate_login_user="3/minute") as api:
        await api.register("root")
        account = await api.account("alice")
        wrong = {"current_password": WRONG, "new_password": "a-new-Password-77"}
        for _ in range(3):
            response = await api.client.post("/api/v1/users/me/password", headers=account.headers, json=wrong)
            assert_error(response, 400, "bad_request")

        blocked = await api.client.post("/api/v1/users/me/password", headers=account.headers, json=wrong)

        assert_rate_limited(blocked, limit=3, window=60)


async def test_registration_meets_the_address_limit(make_api: MakeApi) -> None:
    async with make_api(rate_register_address="2/hour") as api:
        await api.register("first")
        await api.register("second")

        blocked = await api.client.post(
            "/api/v1/auth/register",
            json={"username": "third", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )

        assert_rate_limited(blocked, limit=2, window=3600)
        assert await api.user_count() == 2


async def test_the_per_user_limit_meets_429(make_api: MakeApi) -> None:
    async with make_api(rate_user="4/minute") as api:
        await api.register("root")
        await api.register("alice")
        root = (await api.login("root"))["access_token"]
        alice = (await api.login("alice"))["access_token"]
        for _ in range(4):
            assert (await api.me(alice)).status_code == 200

        blocked = await api.me(alice)

        assert_rate_limited(blocked, limit=4, window=60)
        assert (await api.me(root)).status_code == 200


# -- Redis down ----------------------------------------------------------------------


@pytest.fixture
async def no_redis(make_api: MakeApi) -> AsyncIterator[Api]:
    """user_service pointed at a port where no Redis listens."""
    async with make_api(redis_url=f"redis://127.0.0.1:{free_port()}/0") as api:
        yield api


async def test_login_fails_closed_when_redis_is_down(no_redis: Api) -> None:
    response = await no_redis.token("alice", PASSWORD)

    assert_error(response, 503, "service_unavailable")


async def test_registration_fails_closed_when_redis_is_down(no_redis: Api) -> None:
    response = await no_redis.client.post("/api/v1/auth/register", json={"username": "alice", "password": PASSWORD})

    assert_error(response, 503, "service_unavailable")
    assert await no_redis.user_count() == 0


async def test_authentication_fails_closed_when_redis_is_down(no_redis: Api) -> None:
    now = int(time.time())
    claims = {
        "iss": "jilu",
        "aud": "jilu-api",
        "sub": "someone",
        "exp": now + 600,
        "iat": now,
        "jti": "j" * 32,
        "typ": "access",
        "sid": "s" * 32,
        "scope": "read write",
    }
    token = jwt.encode(claims, derive_key(no_redis.settings.secret, "jwt"), algorithm="HS256")

    for attempt in (token, "jilu_pat_" + "x" * 43):
        assert_error(await no_redis.me(attempt), 503, "service_unavailable")
    assert_error(await no_redis.refresh(token), 401, "invalid_token")  # not a refresh token at all
    assert_error(await no_redis.client.get("/api/v1/admin/users", headers=bearer(token)), 503, "service_unavailable")


async def test_refresh_fails_closed_when_redis_is_down(no_redis: Api) -> None:
    # A user in the database and a well-signed refresh token for them: only Redis is missing.
    async with service_state(no_redis.app).write_sessionmaker() as session, session.begin():
        user = User(username="alice", username_key="alice", password_hash=hash_password_sync(PASSWORD))
        session.add(user)
    codec = TokenCodec(no_redis.settings.secret, 15, 30)
    refresh_token = codec.issue("refresh", user.id, "s" * 32).token

    response = await no_redis.refresh(refresh_token)

    assert_error(response, 503, "service_unavailable")
