"""UUIDv7 ids (RFC 9562): a 48-bit millisecond timestamp, then random bits.

Python 3.11 has no `uuid.uuid7`; these few lines keep ids time-ordered and, within one
process, strictly increasing even when many are made in the same millisecond.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = 0  # (timestamp_ms << 74 | counter-bearing random tail) of the last id made


def uuid7() -> uuid.UUID:
    global _last
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        rand = int.from_bytes(os.urandom(10), "big") & ((1 << 74) - 1)
        candidate = (now_ms << 74) | rand
        if candidate <= _last:  # same millisecond (or a clock step back): keep increasing
            candidate = _last + 1
        _last = candidate
    ts, tail = candidate >> 74, candidate & ((1 << 74) - 1)
    rand_a, rand_b = tail >> 62, tail & ((1 << 62) - 1)
    value = (ts << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


def new_id() -> str:
    """A new string id, as every table uses."""
    return str(uuid7())
