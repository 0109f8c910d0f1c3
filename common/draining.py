"""A service shutting down gracefully: what its long-lived responses listen for.

On SIGTERM (the launcher stopping, a deployment rolling) uvicorn stops accepting connections
and lets the requests in flight finish for `GRACEFUL_SHUTDOWN_SECONDS`, then cancels what is
left: a stream still open then would be cut off mid-event. `common.runner` calls `begin()`
as the shutdown starts, so a stream can end itself cleanly first: a chat answer gets
`STREAM_GRACE_SECONDS` to complete, then ends with an `error` event (`service_unavailable`)
instead of being cut off; the live record events of the web port end at once (the browser
reconnects with `Last-Event-ID`, to another replica or after the restart). Plain requests
simply finish.

The state is per process (one service per process); `listening` callbacks run on the
event loop that serves the requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

# uvicorn's `timeout_graceful_shutdown` (common/runner.py): what a request in flight gets.
GRACEFUL_SHUTDOWN_SECONDS = 5.0
# What an open stream gets to finish by itself once the shutdown began, well inside the
# above, so that a relaying service (web, mobile) still passes its last event on.
STREAM_GRACE_SECONDS = 2.0

_started = False
_listeners: set[Callable[[], None]] = set()


def begin() -> None:
    """The shutdown has begun: tell every listener, once."""
    global _started
    if _started:
        return
    _started = True
    for listener in list(_listeners):
        listener()


def started() -> bool:
    return _started


def listen(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` when the shutdown begins (at once if it already has); returns the
    function that stops listening."""
    _listeners.add(callback)
    if _started:
        callback()
    return lambda: _listeners.discard(callback)


@contextmanager
def listening(callback: Callable[[], None]) -> Iterator[None]:
    """`listen` while inside."""
    stop = listen(callback)
    try:
        yield
    finally:
        stop()


def reset() -> None:
    """Forget a shutdown (for tests that run a service's app in-process)."""
    global _started
    _started = False
