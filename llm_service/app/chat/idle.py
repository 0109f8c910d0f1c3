"""An idle timeout for a stream read piece by piece: `TimeoutError` when one wait for the
next piece lasts longer than the limit.

`asyncio.timeout` around each read does the same, but enters a context and arms and cancels a
timer per piece, which is a good part of what relaying a fast provider's answer costs. Here
one timer per idle period checks the wait in progress, if any. As with `asyncio.timeout`, the
task is cancelled where it waits and the cancellation becomes `TimeoutError` on leaving the
block, so nothing outside a wait is ever interrupted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self, TypeVar

T = TypeVar("T")


class IdleTimeout:
    """`async with IdleTimeout(seconds) as idle: ... await idle.next(stream) ...`"""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._waiting_since: float | None = None
        self._expired = False

    async def __aenter__(self) -> Self:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("IdleTimeout must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(self.seconds, self._check)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()
        # Only the cancellation this timeout asked for becomes a TimeoutError; anyone else's
        # (the client went away) stays a cancellation.
        if self._expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    async def next(self, stream: AsyncIterator[T]) -> T:
        """The next piece of `stream`, waited for at most `seconds`."""
        self._waiting_since = self._loop.time()
        try:
            return await anext(stream)
        finally:
            self._waiting_since = None

    def _check(self) -> None:
        since, now = self._waiting_since, self._loop.time()
        if since is not None and now - since >= self.seconds:
            # The task is suspended inside `next` (a wait in progress), so that is where the
            # cancellation lands, even if the piece it waits for has just arrived.
            self._expired = True
            self._task.cancel()
            return
        # The earliest moment the wait in progress, or one starting now, can reach the limit.
        self._timer = self._loop.call_at((now if since is None else since) + self.seconds, self._check)
