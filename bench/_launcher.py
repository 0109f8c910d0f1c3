"""The real launcher (`python main.py`) for benchmarks: free ports, a temporary data dir,
and nothing left running afterwards.

Redis is the machine's at 127.0.0.1:6379 when one answers (database 14: the tests use
9 and 10 and empty them), otherwise the launcher embeds one on a free port, as it would for a new user.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import psutil

from common.cache.embedded import redis_answers
from common.config import SERVICE_NAMES

ROOT = Path(__file__).resolve().parent.parent
UP_LINE = "jilu: all services are up"
MACHINE_REDIS_URL = "redis://127.0.0.1:6379/14"
STOP_TIMEOUT = 30.0  # the launcher's own grace period is 10 s per group


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def health_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class LauncherProcess:
    """`python main.py` as a subprocess; use it as a context manager so it is always stopped."""

    def __init__(
        self, data_dir: Path, services: tuple[str, ...] = SERVICE_NAMES, extra_env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.services = services
        self.extra_env = extra_env or {}
        *ports, redis_port = free_ports(len(SERVICE_NAMES) + 1)
        self.ports = dict(zip(SERVICE_NAMES, ports, strict=True))
        self.embedded_redis = not redis_answers(MACHINE_REDIS_URL)
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0" if self.embedded_redis else MACHINE_REDIS_URL
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.output: collections.deque[str] = collections.deque(maxlen=40)
        self.up = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def redis_description(self) -> str:
        if self.embedded_redis:
            return f"embedded by the launcher at {self.redis_url}"
        return f"the machine's at {MACHINE_REDIS_URL}"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def environment(self) -> dict[str, str]:
        # The developer's own JILU_ variables must not change what is measured.
        env = {key: value for key, value in os.environ.items() if not key.upper().startswith("JILU_")}
        env.update({f"JILU_{name.upper()}_PORT": str(port) for name, port in self.ports.items()})
        env.update(
            {
                "JILU_HOST": "127.0.0.1",
                "JILU_SERVICES": ",".join(self.services),
                "JILU_DATA_DIR": str(self.data_dir),
                "JILU_REDIS_URL": self.redis_url,
                "JILU_EMBEDDED_REDIS": "auto",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> LauncherProcess:
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py")],
            cwd=ROOT,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C at the terminal reaches the benchmark, which then
            # stops the launcher properly, instead of reaching every process at once.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_output, name="launcher-output", daemon=True)
        self._reader.start()
        return self

    def _read_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            self.output.append(line)
            if line.startswith(UP_LINE):
                self.up.set()

    def wait_up(self, timeout: float = 60.0) -> float:
        """Seconds from start until the launcher said every service is up and every service
        answers `GET /health`."""
        assert self.process is not None
        deadline = self.started_at + timeout
        while not self.up.wait(0.02):
            if self.process.poll() is not None:
                raise RuntimeError(f"the launcher exited with code {self.process.returncode}: {self._last_lines()}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the launcher did not say '{UP_LINE}' within {timeout:.0f}s: {self._last_lines()}")
        pending = list(self.services)
        while pending:
            pending = [name for name in pending if not health_answers(self.url(name))]
            if pending and time.perf_counter() > deadline:
                raise TimeoutError(f"{', '.join(pending)} did not answer /health within {timeout:.0f}s")
        return time.perf_counter() - self.started_at

    def _last_lines(self) -> str:
        return " / ".join(line for line in list(self.output)[-5:] if line) or "(no output)"

    def service_processes(self) -> dict[str, psutil.Process]:
        """Each running service's process (a direct child of the launcher), by service name."""
        assert self.process is not None
        scripts = {str(ROOT / f"{name}_service" / "main.py"): name for name in self.services}
        found: dict[str, psutil.Process] = {}
        for child in psutil.Process(self.process.pid).children():
            try:
                command = child.cmdline()
            except psutil.Error:
                continue
            for part in command[1:]:
                if part in scripts:
                    found[scripts[part]] = child
        return found

    def launcher_process(self) -> psutil.Process:
        assert self.process is not None
        return psutil.Process(self.process.pid)

    def stop(self) -> None:
        """SIGTERM the launcher (it stops its children), then kill whatever it left behind."""
        if self.process is None:
            return
        try:
            leftovers = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            leftovers = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for child in leftovers:
            try:
                if child.is_running():  # psutil checks the pid still names the same process
                    print(f"bench: killing pid {child.pid} that the launcher left behind", file=sys.stderr)
                    child.kill()
            except psutil.Error:
                pass
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.process = None

    def __enter__(self) -> LauncherProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
