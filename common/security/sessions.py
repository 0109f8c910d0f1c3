"""Login sessions in Redis: refresh-token families, the access-token denylist, and a short
cache of each user's standing (active, role) that every service reads.

- `jilu:session:{sid}` (hash: user_id, jti of the one live refresh token) lives as long as a
  refresh token. An access token is accepted only while its session exists, so logout,
  password change and deactivation end it at once on every service.
- `jilu:user:{uid}:sessions` (set of sids) finds a user's sessions to end them all.
- `jilu:denied:{jti}` marks a logged-out access token until it would have expired.
- `jilu:user:{uid}:standing` caches `is_active` and `role` ("1:user"). An administrator's
  change overwrites it; a value read from the database is cached only where none is (SET NX),
  so a read racing a deactivation cannot put "active" back. A miss falls back to the
  database, so a Redis restart never re-admits a deactivated user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from common.cache import cache_key

STANDING_TTL = 300

# Consume a refresh token atomically: of two concurrent uses exactly one matches the
# current jti; a use of any other (already rotated) jti revokes the whole family.
_ROTATE = """
local current = redis.call('HGET', KEYS[1], 'jti')
if not current then return 0 end
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[4] then return 0 end
if current ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[5])
  return -1
end
redis.call('HSET', KEYS[1], 'jti', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
-- The user's index of sessions must outlive every session in it, or a session kept alive
-- by refreshes would escape `end_all_sessions` (password change, deactivation).
redis.call('SADD', KEYS[2], ARGV[5])
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return 1
"""

ROTATED, UNKNOWN, REUSED = 1, 0, -1


def session_key(session_id: str) -> str:
    return cache_key("session", session_id)


def user_sessions_key(user_id: str) -> str:
    return cache_key("user", user_id, "sessions")


def denylist_key(jti: str) -> str:
    return cache_key("denied", jti)


def standing_key(user_id: str) -> str:
    return cache_key("user", user_id, "standing")


@dataclass(frozen=True)
class Standing:
    is_active: bool
    role: str


async def open_session(redis: Redis, user_id: str, session_id: str, refresh_jti: str, ttl: int) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(session_key(session_id), mapping={"user_id": user_id, "jti": refresh_jti})
        pipe.expire(session_key(session_id), ttl)
        pipe.sadd(user_sessions_key(user_id), session_id)
        pipe.expire(user_sessions_key(user_id), ttl)
        await pipe.execute()


async def rotate_refresh(
    redis: Redis, user_id: str, session_id: str, presented_jti: str, new_jti: str, ttl: int
) -> int:
    """ROTATED, UNKNOWN (no such live session) or REUSED (family revoked)."""
    keys = [session_key(session_id), user_sessions_key(user_id)]
    result = await redis.eval(_ROTATE, 2, *keys, presented_jti, new_jti, ttl, user_id, session_id)  # type: ignore[misc]
    return int(result)


async def end_session(redis: Redis, user_id: str, session_id: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(session_key(session_id))
        pipe.srem(user_sessions_key(user_id), session_id)
        await pipe.execute()


async def end_all_sessions(redis: Redis, user_id: str, *, keep: str | None = None) -> int:
    """End every session of a user but `keep`; returns how many ended."""
    members = await redis.smembers(user_sessions_key(user_id))  # type: ignore[misc]
    session_ids = [str(sid) for sid in members if sid != keep]
    if not session_ids:
        return 0
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(*(session_key(sid) for sid in session_ids))
        pipe.srem(user_sessions_key(user_id), *session_ids)
        await pipe.execute()
    return len(session_ids)


async def deny_access_token(redis: Redis, jti: str, expires_at: datetime) -> None:
    ttl = int((expires_at - datetime.now(UTC)).total_seconds()) + 1
    if ttl > 0:
        await redis.set(denylist_key(jti), "1", ex=ttl)


async def cache_standing(redis: Redis, user_id: str, standing: Standing, *, authoritative: bool) -> None:
    """`authoritative`: the change itself (an admin's); otherwise a read of the database,
    cached only if nothing newer is."""
    value = f"{int(standing.is_active)}:{standing.role}"
    await redis.set(standing_key(user_id), value, ex=STANDING_TTL, nx=not authoritative)


def decode_standing(raw: str | None) -> Standing | None:
    if not raw:
        return None
    active, _, role = raw.partition(":")
    return Standing(is_active=active == "1", role=role or "user")
