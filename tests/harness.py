"""Jilu's real processes for the tests and the benchmarks: the launcher (`python main.py`), or
any one command, started on free ports, waited for until it answers, its output collected as
it comes, and stopped with everything it started.

In the spirit of safir's `safir.testing.uvicorn` (a real server on a free port, waited for
until it answers), plus what a launcher needs: its output read line by line (a test can wait
for a line), every process seen under it recorded, and a stop that leaves none of them running.

    with launched(tmp_path / "data", redis_url) as jilu:  # every service, up and answering
        httpx.get(f"{jilu.url('mobile')}/health")

Nothing here is fixed: ports are free ones, the data dir and Redis are the caller's, so
several pytest-xdist workers can each run their own (tests/e2e/stack.py: the end-to-end
tests' stack, with a Redis of its own).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import psutil

from common.config import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[1]
# Bounds on waiting only: the machine may be slow, nothing here is a timing assertion.
START_TIMEOUT = 120.0
EXIT_TIMEOUT = 45.0  # a launcher giving up after its crashes, or stopping every service
STOP_TIMEOUT = 30.0  # before SIGKILL; the launcher's own grace period is 10 s per group
UP_LINE = "jilu: all services are up"
# What the launcher prints after UP_LINE, one line per service.
SERVICE_LINE = re.compile(r"^\s+(?P<label>\w+_service)\s+(?P<url>http://\S+)\s+pid (?P<pid>\d+)\s*$")


class ProcessError(RuntimeError):
    """A started process exited, or did not print or answer what was awaited, in time."""


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):  # all bound at once, so the kernel gives distinct ones
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def service_ports(services: Sequence[str] = SERVICE_NAMES) -> dict[str, int]:
    """One free port per service, all different."""
    return dict(zip(services, free_ports(len(services)), strict=True))


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any JILU_ variable a developer exported (they must not change
    what a test or a benchmark sees), on 127.0.0.1, unbuffered, plus `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("JILU_")}
    env.update({"PYTHONUNBUFFERED": "1", "JILU_HOST": "127.0.0.1", **settings})
    return env


def answers_health(url: str, timeout: float = 2.0) -> bool:
    """True when `url`/health answers 200. (urllib: an httpx client would build an SSL context
    per call, which a benchmark of start-up time would measure too.)"""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def pid_gone(process: psutil.Process) -> bool:
    """True once `process` (this very process, not a later one with its pid) has ended."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Spawned:
    """`command` started in the repository's root with `env` (see `clean_env`): what it prints
    on stdout and stderr, line by line, every process seen under it, and `close()`, which
    leaves none of them running. A context manager that closes it.

    `keep_lines` bounds the lines kept per stream (all by default); `watch_descendants` polls
    for descendants every 0.1 s (so even short-lived ones are recorded; it costs CPU, so only
    where a test checks them); `new_session` keeps a terminal's Ctrl-C from reaching it."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        *,
        keep_lines: int | None = None,
        watch_descendants: bool = False,
        new_session: bool = False,
    ) -> None:
        self.name = name
        self.env = dict(env)
        self.lines: deque[str] = deque(maxlen=keep_lines)  # both streams, as they came
        self.stdout: deque[str] = deque(maxlen=keep_lines)
        self.stderr: deque[str] = deque(maxlen=keep_lines)
        self._changed = threading.Condition()
        # pid -> (process, command line) of every descendant seen while it ran.
        self._seen: dict[int, tuple[psutil.Process, str]] = {}
        self._seen_lock = threading.Lock()
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=new_session,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            self._thread("stdout", self._read, self.process.stdout, self.stdout),
            self._thread("stderr", self._read, self.process.stderr, self.stderr),
        ]
        self._watcher = self._thread("watch", self._watch_descendants) if watch_descendants else None

    def _thread(self, role: str, target: Callable[..., None], *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=f"{self.name}-{role}", daemon=True)
        thread.start()
        return thread

    def _read(self, stream: IO[str], lines: deque[str]) -> None:
        for line in iter(stream.readline, ""):
            with self._changed:
                lines.append(line.rstrip("\n"))
                self.lines.append(lines[-1])
                self._changed.notify_all()
        with self._changed:  # the stream ended: a waiter can tell now
            self._changed.notify_all()

    def _watch_descendants(self) -> None:
        while self.process.poll() is None:
            self.record_descendants()
            time.sleep(0.1)

    # -- the processes under it ----------------------------------------------------------

    def record_descendants(self) -> list[psutil.Process]:
        """Record every process under it now (with its command line); those processes."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        with self._seen_lock:
            for child in children:
                known = self._seen.get(child.pid)
                if known and known[0] != child:  # the pid of a dead child, reused
                    known = None
                try:
                    # Read again each time: a child caught between fork and exec still shows
                    # its parent's command line. A zombie's reads empty: keep what was seen.
                    cmdline = " ".join(child.cmdline()) or (known[1] if known else "")
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    cmdline = known[1] if known else ""
                self._seen[child.pid] = (known[0] if known else child, cmdline)
        return children

    def recorded(self) -> list[tuple[psutil.Process, str]]:
        """Every descendant seen so far, with its command line."""
        with self._seen_lock:
            return list(self._seen.values())

    def alive_leftovers(self) -> list[str]:
        """Command lines of the recorded descendants that are still running."""
        return [cmdline for proc, cmdline in self.recorded() if not pid_gone(proc)]

    # -- what it prints ------------------------------------------------------------------

    @property
    def output(self) -> str:
        """The last 200 lines of each stream, for a failure's message."""
        with self._changed:
            return "\n".join(["--- stdout", *list(self.stdout)[-200:], "--- stderr", *list(self.stderr)[-200:]])

    def _ended(self) -> bool:
        """Exited, and everything it printed has been read."""
        return self.process.poll() is not None and not any(thread.is_alive() for thread in self._readers)

    def wait_for_line(self, text: str, timeout: float = START_TIMEOUT) -> str:
        """The first line printed on stdout or stderr that contains `text`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                if self._ended():
                    code = self.process.returncode
                    raise ProcessError(f"{self.name} exited ({code}) before printing {text!r}:\n{self.output}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProcessError(f"{self.name}: no line with {text!r} within {timeout:.0f}s:\n{self.output}")
                self._changed.wait(min(remaining, 0.2))

    def wait_until_answers(self, url: str, timeout: float = START_TIMEOUT) -> None:
        """Until `url`/health answers 200."""
        deadline = time.monotonic() + timeout
        while not answers_health(url):
            if self.process.poll() is not None:
                raise ProcessError(f"{self.name} exited ({self.process.returncode}):\n{self.output}")
            if time.monotonic() > deadline:
                raise ProcessError(f"{self.name}: {url}/health did not answer within {timeout:.0f}s:\n{self.output}")
            time.sleep(0.1)

    # -- stopping ------------------------------------------------------------------------

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        """Its exit code, once it exited by itself and its output is read."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ProcessError(f"{self.name} did not exit within {timeout:.0f}s:\n{self.output}") from None
        for thread in self._readers:
            thread.join(5)
        return code

    def stop(self, signum: int = signal.SIGTERM, timeout: float = EXIT_TIMEOUT) -> int:
        """Send `signum`; the exit code (what a test of a clean stop asserts)."""
        self.record_descendants()
        self.process.send_signal(signum)
        return self.wait_exit(timeout)

    def close(self) -> list[str]:
        """Stop it whatever state it is in: SIGTERM, SIGKILL after `STOP_TIMEOUT`, then SIGKILL
        for every descendant seen that still runs. Their command lines; never fails a test."""
        if self.process.poll() is None:
            self.record_descendants()
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.record_descendants()
                self.process.kill()
                self.process.wait(10)
        leftovers = [(proc, cmdline) for proc, cmdline in self.recorded() if not pid_gone(proc)]
        for proc, _ in leftovers:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs([proc for proc, _ in leftovers], timeout=10)
        for thread in [*self._readers, *([self._watcher] if self._watcher else [])]:
            thread.join(5)
        # Closing a pipe while its reader is still blocked in it could hang; leave such a one open.
        if not any(thread.is_alive() for thread in self._readers):
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        return [cmdline for _, cmdline in leftovers]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class Launcher(Spawned):
    """`python main.py *args` on `ports` (free ones by default), `data_dir` and `redis_url`;
    `settings` add or override JILU_ variables. Where each service answers, what each prints."""

    def __init__(
        self,
        data_dir: Path,
        redis_url: str,
        args: Sequence[str] = (),
        *,
        ports: dict[str, int] | None = None,
        settings: Mapping[str, str] | None = None,
        keep_lines: int | None = None,
        watch_descendants: bool = False,
        new_session: bool = False,
    ) -> None:
        self.ports = ports or service_ports()
        self.data_dir = data_dir
        self.redis_url = redis_url
        env = clean_env(
            **{
                **{f"JILU_{name.upper()}_PORT": str(port) for name, port in self.ports.items()},
                "JILU_DATA_DIR": str(data_dir),
                "JILU_REDIS_URL": redis_url,
                **(settings or {}),
            }
        )
        self.services = tuple(env["JILU_SERVICES"].split(",")) if env.get("JILU_SERVICES") else SERVICE_NAMES
        super().__init__(
            "launcher",
            [sys.executable, "main.py", *args],
            env,
            keep_lines=keep_lines,
            watch_descendants=watch_descendants,
            new_session=new_session,
        )

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def wait_until_up(self, expected: Sequence[str] | None = None, timeout: float = START_TIMEOUT) -> dict[str, int]:
        """Wait for `UP_LINE`, the line it prints for each service in `expected` (by default
        the services it was told to start), and each one's `GET /health`. The pid printed for
        each service, by label (`user_service`)."""
        expected = tuple(expected or self.services)
        deadline = time.monotonic() + timeout
        self.wait_for_line(UP_LINE, timeout)
        lines_deadline = time.monotonic() + 10  # they are printed just after the headline
        with self._changed:
            while True:
                listed = self._listed()
                if len(listed) >= len(expected) or self._ended() or time.monotonic() > lines_deadline:
                    break
                self._changed.wait(0.2)
        if set(listed) != {f"{name}_service" for name in expected}:
            raise ProcessError(f"the launcher did not list {', '.join(expected)} as up:\n{self.output}")
        for label, (url, _) in listed.items():
            if url != self.url(label.removesuffix("_service")):
                raise ProcessError(f"{label} is not at {url}:\n{self.output}")
        for name in expected:
            self.wait_until_answers(self.url(name), max(deadline - time.monotonic(), 1.0))
        self.record_descendants()
        return {label: pid for label, (_, pid) in listed.items()}

    def _listed(self) -> dict[str, tuple[str, int]]:
        """label -> (URL, pid) of each service line printed after `UP_LINE`."""
        with self._changed:
            stdout = list(self.stdout)
        start = next((i for i, line in enumerate(stdout) if UP_LINE in line), len(stdout))
        matches = [SERVICE_LINE.match(line) for line in stdout[start + 1 :]]
        return {m["label"]: (m["url"], int(m["pid"])) for m in matches if m}

    def service_lines(self, service: str) -> list[str]:
        """What `service` printed (the launcher prefixes each of its lines with its name)."""
        prefix = f"{service:<6} | "
        with self._changed:
            return [line.removeprefix(prefix) for line in self.lines if line.startswith(prefix)]

    def service_processes(self) -> dict[str, psutil.Process]:
        """Each running service's process (a direct child of the launcher), by service name."""
        found: dict[str, psutil.Process] = {}
        for child in psutil.Process(self.process.pid).children():
            try:
                command = child.cmdline()
            except psutil.Error:
                continue
            for name in self.services:
                if any(part.endswith(f"{name}_service/main.py") for part in command[1:]):
                    found[name] = child
        return found

    def error_lines(self) -> list[str]:
        """The launcher's own error lines on stderr."""
        with self._changed:
            return [line for line in self.stderr if line.startswith("jilu: error:")]


@contextmanager
def launched(
    data_dir: Path,
    redis_url: str,
    settings: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[Launcher]:
    """A `Launcher(data_dir, redis_url, args, settings=settings)` with every service it starts
    up and answering; stopped on exit, whatever happened."""
    with Launcher(data_dir, redis_url, args, settings=settings) as jilu:
        jilu.wait_until_up()
        yield jilu
