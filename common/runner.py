"""Running one service as a process: what each service's `main.py` calls.

Start-up failures a person can fix (a bad setting, a missing package, a port in use) end
in one line on stderr and a distinct exit code that the launcher recognises and reports,
never in a traceback.
"""

from __future__ import annotations

import errno
import importlib
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, NoReturn

from common.draining import GRACEFUL_SHUTDOWN_SECONDS

EXIT_BAD_SETTING = 2
EXIT_MISSING_DEPENDENCY = 3
EXIT_PORT_IN_USE = 4
# Exit codes that restarting cannot fix.
FATAL_EXIT_CODES = {EXIT_BAD_SETTING, EXIT_MISSING_DEPENDENCY, EXIT_PORT_IN_USE}

LAUNCHER_PID_ENV = "JILU_LAUNCHER_PID"


def fail(service: str, message: str, code: int) -> NoReturn:
    print(f"{service}_service: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def describe_validation_error(exc: Exception) -> str:
    """`JILU_WEB_PORT: Input should be a valid integer` from a pydantic ValidationError."""
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return str(exc).splitlines()[0]
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ())]
    where = f"JILU_{loc[0].upper()}: " if loc else ""
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"bad setting {where}{message}"


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket before uvicorn starts, so 'port in use' is caught here."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _exit_with_launcher() -> None:
    """When the launcher dies without stopping us (SIGKILL), do not live on as an orphan."""
    launcher = os.environ.get(LAUNCHER_PID_ENV)
    if not launcher:
        return

    def watch() -> None:
        while os.getppid() == int(launcher):
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()


def _draining_server(config: Any) -> Any:
    """A uvicorn server that announces its shutdown (`common.draining`) before it waits for
    the requests in flight, so an open stream can end itself with a clean last event."""
    import uvicorn

    from common import draining

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            draining.begin()
            await super().shutdown(sockets)

    return DrainingServer(config)


def run_service(service: str, app_module: str) -> None:
    """Import `app_module` (it has `get_settings()` and `create_app(settings)`), then serve."""
    try:
        import uvicorn
        from pydantic import ValidationError

        module = importlib.import_module(app_module)
    except ModuleNotFoundError as exc:
        fail(
            service,
            f"missing dependency '{exc.name}' (run 'make run' to install the requirements)",
            EXIT_MISSING_DEPENDENCY,
        )
    try:
        settings = module.get_settings()
    except ValidationError as exc:
        fail(service, describe_validation_error(exc), EXIT_BAD_SETTING)

    from common.logging import setup_logging

    setup_logging(f"{service}_service", json_logs=settings.is_production, level=settings.log_level)
    port = settings.port_of(service)
    try:
        sock = bind_socket(settings.host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(service, f"port {port} on {settings.host} is already in use", EXIT_PORT_IN_USE)
        fail(service, f"cannot listen on {settings.host}:{port}: {exc.strerror}", EXIT_BAD_SETTING)

    _exit_with_launcher()
    from common.http_protocol import JiluHttpProtocol

    config = uvicorn.Config(
        module.create_app(settings),
        http=JiluHttpProtocol,
        log_config=None,
        access_log=False,
        server_header=False,
        # Who the client is and which scheme and host it used are decided by the app from
        # JILU_TRUSTED_PROXIES (common/security/client_address.py, origin.py); uvicorn's own
        # proxy-header handling would believe any loopback peer's X-Forwarded-* first.
        proxy_headers=False,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_SECONDS),
    )
    _draining_server(config).run(sockets=[sock])
