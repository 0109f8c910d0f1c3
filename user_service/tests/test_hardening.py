"""Races and corner cases found in review: stale standing caches, literal search wildcards,
one first-admin lock per database."""

from __future__ import annotations

from sqlalchemy import update

from common.security.sessions import Standing, cache_standing, standing_key
from common.users.models import User
from user_service.tests.helpers import Account, Api


async def test_a_database_read_never_overwrites_a_newer_deactivation(api: Api, admin: Account, alice: Account) -> None:
    # An admin deactivates alice; a request that read "active" from the database just before
    # then tries to cache what it read: the deactivation must win.
    response = await api.client.patch(
        f"/api/v1/admin/users/{alice.id}", headers=admin.headers, json={"is_active": False}
    )
    assert response.status_code == 200
    await cache_standing(api.redis, alice.id, Standing(is_active=True, role="user"), authoritative=False)

    assert await api.redis.get(standing_key(alice.id)) == "0:user"


async def test_a_standing_missing_from_redis_is_read_from_the_database(
    api: Api, admin: Account, alice: Account
) -> None:
    async with api.sessionmaker() as session, session.begin():
        await session.execute(update(User).where(User.id == alice.id).values(is_active=False))
    await api.redis.delete(standing_key(alice.id))  # as after a Redis restart

    refused = await api.me(alice.access)

    assert refused.status_code in (401, 403)
    assert await api.redis.get(standing_key(alice.id)) == "0:user"


async def test_admin_search_treats_percent_and_underscore_literally(api: Api, admin: Account) -> None:
    await api.register("plain_name")
    await api.register("plainxname")

    underscore = await api.client.get("/api/v1/admin/users", headers=admin.headers, params={"q": "n_n"})
    percent = await api.client.get("/api/v1/admin/users", headers=admin.headers, params={"q": "%"})

    assert [u["username"] for u in underscore.json()["items"]] == ["plain_name"]
    assert percent.json()["items"] == []


async def test_the_first_admin_lock_belongs_to_one_database(api: Api) -> None:
    # Another instance's database being set up on the same Redis must not block this one.
    await api.redis.set("jilu:lock:first-admin:0000000000000000", "1", ex=30)

    first = await api.register("root")

    assert first["role"] == "admin"
