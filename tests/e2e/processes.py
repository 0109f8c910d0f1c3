"""Starting Jilu's real processes for end-to-end tests, reading their output, stopping them
(SIGTERM, then SIGKILL for them and every descendant seen)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import redis as sync_redis

from common.config import SERVICE_NAMES
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
# Bounds on waiting only: the machine may be slow, nothing here is a timing assertion.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0

# Generous budgets for what the end-to-end tests do from one address; the per-username login
# limit keeps its default (10/minute), which the brute-force tests meet.
E2E_RATES = {
    "JILU_RATE_LOGIN_ADDRESS": "10000/minute",
    "JILU_RATE_REGISTER_ADDRESS": "10000/minute",
    "JILU_RATE_USER": "100000/minute",
}


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any JILU_ variable a developer exported, plus `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("JILU_")}
    env.update({"PYTHONUNBUFFERED": "1", "JILU_HOST": "127.0.0.1", **settings})
    return env


@dataclass
class Started:
    """A process this suite started, its merged output, and every descendant seen."""

    name: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _descendants: dict[int, psutil.Process] = field(default_factory=dict)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, name=f"read-{self.name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in iter(self.process.stdout.readline, ""):
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines[-200:])

    def wait_for_line(self, text: str, timeout: float = START_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                if self.process.poll() is not None:
                    pytest.fail(f"{self.name} exited ({self.process.returncode}) before {text!r}:\n{self.output}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"{self.name}: no line with {text!r} within {timeout:.0f}s:\n{self.output}")
                self._changed.wait(min(remaining, 0.5))

    def record_descendants(self) -> None:
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for child in children:
            self._descendants.setdefault(child.pid, child)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL what is left, descendants included."""
        self.record_descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        survivors = []
        for child in self._descendants.values():
            try:
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    survivors.append(child)
            except psutil.NoSuchProcess:
                continue
        for child in survivors:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(survivors, timeout=10)
        if self._reader is not None:
            self._reader.join(5)


def start_process(name: str, command: list[str], env: dict[str, str]) -> Started:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    return Started(name, process)


def wait_healthy(started: Started, url: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if started.process.poll() is not None:
            pytest.fail(f"{started.name} exited ({started.process.returncode}):\n{started.output}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{started.name} did not answer {url}/health within {timeout:.0f}s:\n{started.output}")


@dataclass
class Jilu:
    """A running launcher: where each service answers, and what the services print."""

    launcher: Started
    ports: dict[str, int]
    data_dir: Path
    redis_url: str
    secret_key: str

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def service_lines(self, service: str) -> list[str]:
        """What `service` printed (the launcher prefixes each line with its name)."""
        prefix = f"{service:<6} | "
        with self.launcher._changed:
            return [line.removeprefix(prefix) for line in self.launcher.lines if line.startswith(prefix)]


@contextmanager
def launched(redis_url: str, data_dir: Path, **settings: str) -> Iterator[Jilu]:
    """Every service started by the real launcher (`python main.py`) on free ports, on an
    empty `data_dir` and the Redis database `redis_url` (emptied first), with the local LLM
    provider and `E2E_RATES`; `settings` add or override `JILU_` variables. Stopped on exit,
    whatever happened."""
    sync_redis.Redis.from_url(redis_url).flushdb()
    ports = dict(zip(SERVICE_NAMES, distinct_free_ports(len(SERVICE_NAMES)), strict=True))
    secret_key = "e2e-" + os.urandom(24).hex()
    env = clean_env(
        JILU_ENV="development",
        JILU_SERVICES=",".join(SERVICE_NAMES),
        JILU_DATA_DIR=str(data_dir),
        JILU_DATABASE_URL="",
        JILU_REDIS_URL=redis_url,
        JILU_EMBEDDED_REDIS="never",
        JILU_SECRET_KEY=secret_key,
        JILU_LLM_PROVIDER="local",
        **{f"JILU_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **E2E_RATES,
        **settings,
    )
    launcher = start_process("launcher", [sys.executable, "main.py"], env)
    try:
        launcher.wait_for_line("jilu: all services are up")
        launcher.record_descendants()
        yield Jilu(launcher, ports, data_dir, redis_url, secret_key)
    finally:
        launcher.stop()
