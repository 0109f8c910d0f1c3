"""The idle timeout of a provider's stream (`llm_service.app.chat.idle`): one wait for the next
piece longer than the limit is a `TimeoutError`; time spent outside a wait never counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from llm_service.app.chat.idle import IdleTimeout


async def pieces(count: int, every: float) -> AsyncIterator[int]:
    for n in range(count):
        await asyncio.sleep(every)
        yield n


async def silent(closed: list[str]) -> AsyncGenerator[int]:
    try:
        yield 0
        await asyncio.Event().wait()  # never sends the next piece
        yield 1
    finally:
        closed.append("closed")


async def test_a_wait_longer_than_the_limit_is_a_timeout_and_interrupts_the_wait() -> None:
    closed: list[str] = []
    stream = silent(closed)
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(10):  # only so that a broken timeout cannot hang the suite
            async with IdleTimeout(0.05) as idle:
                assert await idle.next(stream) == 0
                await idle.next(stream)
    assert asyncio.get_running_loop().time() - started < 5  # the idle timeout's, not the guard's
    await stream.aclose()
    assert closed == ["closed"]


async def test_a_steady_stream_longer_than_the_limit_in_all_is_not_a_timeout() -> None:
    stream = pieces(15, every=0.05)
    async with IdleTimeout(0.5) as idle:
        received = [await idle.next(stream) for _ in range(15)]
    assert received == list(range(15))


async def test_time_spent_between_waits_does_not_count() -> None:
    stream = pieces(2, every=0)
    async with IdleTimeout(0.05) as idle:
        assert await idle.next(stream) == 0
        await asyncio.sleep(0.2)  # the reader is busy elsewhere, far past the limit
        assert await idle.next(stream) == 1


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def read() -> None:
        stream = silent([])
        async with IdleTimeout(30) as idle:
            await idle.next(stream)
            await idle.next(stream)

    task = asyncio.create_task(read())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
