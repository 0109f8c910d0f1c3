"""A circuit breaker per LLM provider, so a provider that is down is not hammered.

closed → (N consecutive failed calls) → open → (cool-down) → half-open: one trial call goes
through; its success closes the circuit, its failure opens it again. In-process state: each
replica learns on its own, which is enough to stop one process from piling on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from common.api_clients.llm.errors import CircuitOpen

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Thread-safe; `clock` is injectable so tests can step through the cool-down."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> State:
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.reset_timeout:
            return "open"
        return "half_open"

    def acquire(self) -> bool:
        """Ask to make a call. Returns True when this call is the half-open trial; raises
        `CircuitOpen` (with `retry_after`) when calls are paused."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return False
            if state == "half_open" and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            assert self._opened_at is not None
            remaining = max(0.0, self.reset_timeout - (self._clock() - self._opened_at))
            raise CircuitOpen(retry_after=round(remaining, 3) or None)

    def record_success(self, trial: bool = False) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self, trial: bool = False) -> None:
        with self._lock:
            if trial:
                self._trial_in_flight = False
                self._opened_at = self._clock()
                return
            self._failures += 1
            if self._failures >= self.failure_threshold and self._opened_at is None:
                self._opened_at = self._clock()

    def release(self, trial: bool = False) -> None:
        """The call ended without telling anything about the provider (cancelled, refused
        before sending): a trial slot is handed back."""
        if trial:
            with self._lock:
                self._trial_in_flight = False


class BreakerRegistry:
    """One breaker per provider, keyed by its base URL."""

    def __init__(self, failure_threshold: int = 5, reset_timeout: float = 30.0) -> None:
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def for_url(self, base_url: str) -> CircuitBreaker:
        key = base_url.strip().rstrip("/").lower()
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                breaker = self._breakers[key] = CircuitBreaker(self.failure_threshold, self.reset_timeout)
            return breaker

    def clear(self) -> None:
        with self._lock:
            self._breakers.clear()


# The process's breakers; `OpenAICompatibleClient` uses these unless given one.
breakers = BreakerRegistry()
