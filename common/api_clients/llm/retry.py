"""When to try a provider call again, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date
    (RFC 9110 §10.2.3). None when absent or unreadable; never negative."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        seconds = float(value)  # some providers send "1.5"
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter; the provider's `Retry-After` wins when given.

    A `Retry-After` longer than `retry_after_cap` is not waited out inside one call: the
    error goes back to the caller (with `retry_after`) to decide, e.g. to re-queue a job.
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    retry_after_cap: float = 30.0

    def delay(self, retry_number: int, retry_after: float | None) -> float | None:
        """Seconds before retry number `retry_number` (0 for the first), or None to give up."""
        if retry_number >= self.max_retries:
            return None
        if retry_after is not None:
            if retry_after > self.retry_after_cap:
                return None
            return retry_after
        ceiling = min(self.backoff_max, self.backoff_base * (2**retry_number))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
