"""Redis: the async client, key helpers, and the embedded server."""

from common.cache.client import cache_key, create_redis, get_json, set_json, touch

__all__ = ["cache_key", "create_redis", "get_json", "set_json", "touch"]
