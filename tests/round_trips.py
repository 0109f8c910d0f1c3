"""Counting the Redis round trips code makes, as redis-py sends them (for tests and `bench/auth.py`).

Every command, pipeline or script call redis-py sends is one write of a packed request
followed by one read of its answers: counting `send_packed_command` counts round trips, a
pipeline of three commands as one, a connection's handshake and health-check PING as theirs.
It counts every async Redis client of this process, so measure while nothing else uses one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from redis.asyncio.connection import AbstractConnection


@dataclass
class RoundTrips:
    """How many requests were sent to Redis since counting began."""

    count: int = 0


@contextmanager
def counting_round_trips() -> Iterator[RoundTrips]:
    """Count the round trips of every async Redis connection while the block runs."""
    counter = RoundTrips()
    original = AbstractConnection.send_packed_command

    async def counted(
        self: AbstractConnection, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        counter.count += 1
        await original(self, command, check_health)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
