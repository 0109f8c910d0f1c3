"""Run the real launcher (`python main.py`) as a subprocess on free ports and a temporary
data dir, read what it prints, and make sure nothing it started outlives the test."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from common.config import SERVICE_NAMES
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
# Bounds on waiting only; the launcher normally needs a few seconds for each of these.
START_TIMEOUT = 60.0
EXIT_TIMEOUT = 45.0
SERVICE_LINE = re.compile(r"^\s+(?P<label>\w+_service)\s+(?P<url>http://\S+)\s+pid (?P<pid>\d+)\s*$")


def free_ports() -> dict[str, int]:
    """One free port per service, all different."""
    ports: dict[str, int] = {}
    while len(ports) < len(SERVICE_NAMES):
        port = free_port()
        if port not in ports.values():
            ports[SERVICE_NAMES[len(ports)]] = port
    return ports


def pid_gone(process: psutil.Process) -> bool:
    """True once `process` (this very process, not a later one with its pid) has ended."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass
class LauncherRun:
    """One running `python main.py`, its output, and every process seen under it."""

    process: subprocess.Popen[str]
    ports: dict[str, int]
    data_dir: Path
    redis_url: str
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    # pid -> (process, command line) of every descendant seen while the launcher ran.
    seen: dict[int, tuple[psutil.Process, str]] = field(default_factory=dict)
    _seen_lock: threading.Lock = field(default_factory=threading.Lock)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert self.process.stdout is not None and self.process.stderr is not None
        for stream, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            self._start_thread(self._read, stream, lines)
        self._start_thread(self._watch_descendants)

    def _start_thread(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read(self, stream: object, lines: list[str]) -> None:
        for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def _watch_descendants(self) -> None:
        # Polled, so that a test can check that even short-lived children are gone at the end.
        while self.process.poll() is None:
            self.record_descendants()
            time.sleep(0.1)

    def record_descendants(self) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        with self._seen_lock:
            for child in children:
                known = self.seen.get(child.pid)
                if known and known[0] != child:  # the pid of a dead child, reused
                    known = None
                try:
                    # Read again each time: a child caught between fork and exec still shows
                    # the launcher's command line.
                    cmdline = " ".join(child.cmdline())
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    cmdline = known[1] if known else ""
                self.seen[child.pid] = (known[0] if known else child, cmdline)
        return children

    def recorded(self) -> list[tuple[psutil.Process, str]]:
        """Every descendant seen so far, with its command line."""
        with self._seen_lock:
            return list(self.seen.values())

    # -- reading the output ----------------------------------------------------------

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(["--- stdout", *self.stdout, "--- stderr", *self.stderr])

    def wait_for_line(self, text: str, timeout: float = START_TIMEOUT) -> str:
        """The first line printed on stdout or stderr that contains `text`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in [*self.stdout, *self.stderr]:
                    if text in line:
                        return line
                if self.process.poll() is not None and all(not t.is_alive() for t in self._threads[:2]):
                    pytest.fail(f"the launcher exited ({self.process.returncode}) before {text!r}:\n{self.output}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"no line with {text!r} within {timeout:.0f}s:\n{self.output}")
                self._changed.wait(min(remaining, 0.2))

    def wait_until_up(self, expected: tuple[str, ...] = SERVICE_NAMES) -> dict[str, int]:
        """Wait for "all services are up" and return the pid printed for each service label."""
        self.wait_for_line("jilu: all services are up")
        # The per-service lines are printed just after the headline; give them a moment.
        deadline = time.monotonic() + 10
        while True:
            with self._changed:
                start = next(i for i, line in enumerate(self.stdout) if "jilu: all services are up" in line)
                matches = [SERVICE_LINE.match(line) for line in self.stdout[start + 1 :]]
            services = {m["label"]: m for m in matches if m}
            if len(services) >= len(expected) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert set(services) == {f"{name}_service" for name in expected}, self.output
        for label, match in services.items():
            name = label.removesuffix("_service")
            assert match["url"] == f"http://127.0.0.1:{self.ports[name]}", self.output
        self.record_descendants()
        return {label: int(match["pid"]) for label, match in services.items()}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr if line.startswith("jilu: error:")]

    # -- stopping --------------------------------------------------------------------

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the launcher did not exit within {timeout:.0f}s:\n{self.output}")
        for thread in self._threads:
            thread.join(5)
        return code

    def stop(self, signum: int = signal.SIGTERM, timeout: float = EXIT_TIMEOUT) -> int:
        self.record_descendants()
        self.process.send_signal(signum)
        return self.wait_exit(timeout)

    def cleanup(self) -> None:
        """SIGTERM, then SIGKILL the launcher, then kill whatever it left behind."""
        if self.process.poll() is None:
            self.record_descendants()
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.record_descendants()
                self.process.kill()
                self.process.wait(10)
        leftovers = [proc for proc, _ in self.recorded() if not pid_gone(proc)]
        for proc in leftovers:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(leftovers, timeout=10)
        readers = self._threads[:2]
        for thread in readers:
            thread.join(5)
        # Closing a pipe while its reader is still blocked in it could hang; leave such a one open.
        if not any(thread.is_alive() for thread in readers):
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()

    def alive_leftovers(self) -> list[str]:
        """Command lines of the recorded descendants that are still running."""
        return [cmdline for proc, cmdline in self.recorded() if not pid_gone(proc)]


def launcher_env(ports: dict[str, int], data_dir: Path, redis_url: str, **extra: str) -> dict[str, str]:
    # Start from this environment without any JILU_ setting a developer may have exported.
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("JILU_")}
    env.update({f"JILU_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env.update(
        {
            "JILU_HOST": "127.0.0.1",
            "JILU_DATA_DIR": str(data_dir),
            "JILU_REDIS_URL": redis_url,
            "JILU_EMBEDDED_REDIS": "auto",
            "JILU_DATABASE_URL": "",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


Launch = Callable[..., LauncherRun]


@pytest.fixture
def launch(tmp_path: Path, redis_url: str) -> Iterator[Launch]:
    """Start `python main.py`; every launcher started is stopped (and its children killed) after
    the test, whatever happened.

    `launch(*args, ports=..., data_dir=..., redis_at=..., env={...})`: by default free ports,
    `tmp_path / "data"`, and the machine's Redis (or the suite's embedded one).
    """
    runs: list[LauncherRun] = []

    def start(
        *args: str,
        ports: dict[str, int] | None = None,
        data_dir: Path | None = None,
        redis_at: str | None = None,
        env: dict[str, str] | None = None,
    ) -> LauncherRun:
        ports = ports or free_ports()
        data_dir = data_dir or tmp_path / "data"
        url = redis_at or redis_url
        process = subprocess.Popen(
            [sys.executable, "main.py", *args],
            cwd=ROOT,
            env=launcher_env(ports, data_dir, url, **(env or {})),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        run = LauncherRun(process, ports, data_dir, url)
        runs.append(run)
        return run

    try:
        yield start
    finally:
        for run in runs:
            run.cleanup()
