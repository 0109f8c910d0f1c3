"""End to end: the real launcher (`python main.py`) with its four services as processes."""

from __future__ import annotations

import signal
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from common.cache.embedded import redis_answers
from tests.harness import Launcher, pid_gone, service_ports
from tests.support import free_port, wait_until

pytestmark = pytest.mark.e2e

Launch = Callable[..., Launcher]  # the `launch` fixture (conftest.py)

DEPENDS_ON = {"web": ("user", "llm"), "mobile": ("user", "llm"), "user": (), "llm": ()}


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


def answers_health(url: str) -> bool:
    try:
        return get(f"{url}/health").status_code == 200
    except httpx.HTTPError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def listens_on(pid: int, port: int) -> bool:
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


def child_pids(run: Launcher) -> dict[int, str]:
    """The launcher's direct children right now: pid -> command line."""
    return {child.pid: " ".join(child.cmdline()) for child in psutil.Process(run.process.pid).children(recursive=False)}


def assert_nothing_left(run: Launcher) -> None:
    still_running = run.alive_leftovers()
    assert not still_running, f"still running: {still_running}\n{run.output}"


def assert_one_error_line(run: Launcher, *fragments: str) -> str:
    errors = run.error_lines()
    assert len(errors) == 1, run.output
    for fragment in fragments:
        assert fragment in errors[0], run.output
    assert "Traceback" not in run.output
    return errors[0]


def test_all_four_services_are_healthy_and_ready(launch: Launch) -> None:
    run = launch()
    pids = run.wait_until_up()

    children = child_pids(run)
    for name, port in run.ports.items():
        pid = pids[f"{name}_service"]
        # The printed pid is the launcher's own child running that service's main.py, serving that port.
        assert f"{name}_service/main.py" in children.get(pid, ""), f"pid {pid} is not a child: {children}"
        assert listens_on(pid, port)

        assert get(f"{run.url(name)}/health").json()["status"] == "ok"
        ready = get(f"{run.url(name)}/health/ready")
        assert ready.status_code == 200, ready.text
        expected_checks = {"database", "redis", *(f"{dep}_service" for dep in DEPENDS_ON[name])}
        assert ready.json()["checks"] == dict.fromkeys(expected_checks, "ok")

    assert (run.data_dir / "jilu.db").is_file()
    with sqlite3.connect(run.data_dir / "jilu.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() is not None
    secret = run.data_dir / "secret_key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) >= 32

    assert run.stop() == 0


def test_a_child_killed_with_sigkill_comes_back(launch: Launch) -> None:
    run = launch()
    old_pid = run.wait_until_up()["user_service"]
    old = psutil.Process(old_pid)

    old.kill()

    line = run.wait_for_line("jilu: restarted user_service (pid ")
    new_pid = int(line.rsplit("pid ", 1)[1].rstrip(")"))
    assert new_pid != old_pid
    assert wait_until(lambda: answers_health(run.url("user")), timeout=60), run.output
    assert wait_until(lambda: listens_on(new_pid, run.ports["user"]), timeout=30), run.output
    assert new_pid in child_pids(run)
    assert pid_gone(old)
    assert run.process.poll() is None
    assert run.stop() == 0


def test_a_child_that_crashes_at_start_makes_the_launcher_give_up(launch: Launch, tmp_path: Path) -> None:
    crashing = tmp_path / "crashing-python"
    # It lives a second before crashing, so the healthy services are surely started (and
    # seen) before the launcher gives up on it.
    crashing.write_text("#!/bin/sh\necho 'llm crashes at start'\nsleep 1\nexit 1\n")
    crashing.chmod(0o755)

    run = launch("--max-crashes", "3", "--crash-window", "60", env={"JILU_LLM_PYTHON": str(crashing)})
    code = run.wait_exit()

    assert code != 0
    assert_one_error_line(run, "llm_service", "giving up")
    # Started exactly --max-crashes times, then given up on.
    assert sum("llm crashes at start" in line for line in run.stdout) == 3, run.output
    assert "jilu: all services are up" not in run.output
    # The healthy services it had started were stopped with it.
    started = [cmdline for _, cmdline in run.recorded()]
    assert any("user_service/main.py" in cmdline for cmdline in started), started
    assert_nothing_left(run)


def test_sigterm_leaves_no_child_and_no_embedded_redis(launch: Launch) -> None:
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    run = launch(redis_at=redis_url)
    run.wait_until_up()
    run.wait_for_line(f"jilu: embedded Redis answers at {redis_url}")
    run.record_descendants()
    started = [cmdline for _, cmdline in run.recorded()]
    assert any("redis-server" in cmdline for cmdline in started), started
    assert sum("_service/main.py" in cmdline for cmdline in started) == 4, started

    assert run.stop(signal.SIGTERM) == 0

    assert "jilu: stopped" in run.stdout
    assert_nothing_left(run)
    assert not redis_answers(redis_url)
    assert not any(listening(port) for port in run.ports.values())


def test_sigint_stops_everything(launch: Launch) -> None:
    run = launch()
    run.wait_until_up()

    assert run.stop(signal.SIGINT) == 0

    assert "jilu: SIGINT received; stopping" in run.stdout
    assert "jilu: stopped" in run.stdout
    assert len(run.recorded()) >= 4
    assert_nothing_left(run)


def test_children_exit_by_themselves_when_the_launcher_is_killed(launch: Launch) -> None:
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    run = launch(redis_at=redis_url)
    run.wait_until_up()
    run.record_descendants()
    services = [proc for proc, cmdline in run.recorded() if "_service/main.py" in cmdline]
    redis = [proc for proc, cmdline in run.recorded() if "redis-server" in cmdline]
    assert len(services) == 4 and len(redis) == 1

    run.process.kill()
    run.wait_exit()

    # Services watch the launcher's pid; the embedded Redis gets SIGTERM from the kernel.
    children = [*services, *redis]
    assert wait_until(lambda: all(pid_gone(proc) for proc in children), timeout=30), run.alive_leftovers()
    assert not any(listening(port) for port in run.ports.values())
    assert not redis_answers(redis_url)


def test_a_port_in_use_gives_one_line_naming_the_service(launch: Launch) -> None:
    ports = service_ports()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["mobile"]))
        squatter.listen()
        run = launch(ports=ports)
        code = run.wait_exit()

    assert code != 0
    line = assert_one_error_line(run, "mobile_service", str(ports["mobile"]))
    assert [text for text in run.stderr if text.strip()] == [line]
    assert not run.recorded()


def test_embedded_redis_keeps_its_data_across_a_restart(launch: Launch, tmp_path: Path) -> None:
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    data_dir = tmp_path / "data"

    # One service is enough here (the Redis is what is tested) and keeps two start-ups short.
    first = launch("--services", "user", redis_at=redis_url, data_dir=data_dir, env={"JILU_EMBEDDED_REDIS": "auto"})
    first.wait_until_up(("user",))
    first.wait_for_line(f"jilu: embedded Redis answers at {redis_url}")
    assert get(f"{first.url('user')}/health/ready").json()["checks"]["redis"] == "ok"
    with redis.Redis.from_url(redis_url) as client:
        assert client.set("jilu:e2e:kept", "across restarts")
    assert first.stop() == 0
    assert not redis_answers(redis_url)
    assert any(path.stat().st_size > 0 for path in (data_dir / "redis").iterdir())

    second = launch("--services", "user", redis_at=redis_url, data_dir=data_dir, env={"JILU_EMBEDDED_REDIS": "auto"})
    second.wait_until_up(("user",))
    second.wait_for_line(f"jilu: embedded Redis answers at {redis_url}")
    with redis.Redis.from_url(redis_url) as client:
        assert client.get("jilu:e2e:kept") == b"across restarts"
    assert second.stop() == 0


def test_redis_down_and_embedded_never_gives_one_line(launch: Launch) -> None:
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    run = launch(redis_at=redis_url, env={"JILU_EMBEDDED_REDIS": "never"})

    assert run.wait_exit() != 0
    assert_one_error_line(run, redis_url, "JILU_EMBEDDED_REDIS=never")
    assert not redis_answers(redis_url)
    assert_nothing_left(run)


def test_a_bad_setting_gives_one_line_naming_it(launch: Launch) -> None:
    run = launch(env={"JILU_WEB_PORT": "notaport"})

    assert run.wait_exit() != 0
    assert_one_error_line(run, "JILU_WEB_PORT")
    assert not run.recorded()


def test_services_option_starts_only_those_named(launch: Launch) -> None:
    run = launch("--services", "user,llm")
    pids = run.wait_until_up(("user", "llm"))

    assert set(child_pids(run)) == set(pids.values())
    for name in ("user", "llm"):
        assert get(f"{run.url(name)}/health/ready").status_code == 200
    assert not listening(run.ports["web"])
    assert not listening(run.ports["mobile"])
    assert run.stop() == 0


def test_a_missing_dependency_gives_one_line_naming_the_service(launch: Launch, tmp_path: Path) -> None:
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    bare_python = bare / "bin" / "python"
    assert subprocess.run([bare_python, "-c", "import uvicorn"], capture_output=True).returncode != 0

    run = launch(env={"JILU_USER_PYTHON": str(bare_python), "PYTHONPATH": ""})

    assert run.wait_exit() != 0
    assert_one_error_line(run, "user_service", "missing dependency")
    assert_nothing_left(run)


def test_help_explains_the_options() -> None:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "main.py", "--help"], cwd=root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--services", "--grace", "--max-crashes", "--crash-window", "--startup-timeout"):
        assert option in result.stdout
