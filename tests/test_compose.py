"""docker-compose.yml, the Dockerfile and deploy/nginx.conf agree with the code's settings.

Docker is not needed: the files are read and checked against `common.config`, each
service's `.env` and the repository's layout.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from common.config import DEFAULT_PORTS, PROJECT_ROOT, ROOT_ENV_FILE, SERVICE_NAMES, JiluSettings

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
NGINX_CONF = PROJECT_ROOT / "deploy" / "nginx.conf"
JILU_NAME = re.compile(r"\bJILU_[A-Z0-9_]+\b")
# `${NAME}`, `${NAME:-default}`, `${NAME:?message}`: what Compose substitutes from the shell.
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment:`, whether written as a mapping or as a `KEY=value` list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def service_env_file_port(name: str) -> int:
    values = dotenv_values(PROJECT_ROOT / f"{name}_service" / ".env")
    return int(values[f"JILU_{name.upper()}_PORT"] or 0)


def known_setting_names() -> set[str]:
    """Every variable Jilu reads: the settings' fields, plus the per-service forms."""
    names = {f"JILU_{field.upper()}" for field in JiluSettings.model_fields}
    for service in SERVICE_NAMES:
        names |= {f"JILU_{service.upper()}_{suffix}" for suffix in ("PYTHON", "URL", "PORT")}
    return names


def unknown_setting_names(text: str) -> set[str]:
    return set(JILU_NAME.findall(text)) - known_setting_names()


def resolve_interpolation(value: str) -> str:
    """The value with each `${...}` replaced by a stand-in a production setting accepts."""
    return INTERPOLATION.sub(lambda match: "s" * 48 if "SECRET" in match.group(1) else "stand-in", value)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    pairs = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


# -- the services -------------------------------------------------------------------------


def test_compose_names_the_whole_deployment(services):
    expected = {"redis", "postgres", "migrate", "nginx", *SERVICE_NAMES}
    assert expected <= set(services), f"missing: {sorted(expected - set(services))}"


def test_redis_and_postgres(services):
    redis, postgres = services["redis"], services["postgres"]
    assert redis["image"].startswith("redis:7")
    redis_args = command_of(redis)
    assert "--appendonly" in redis_args and redis_args[redis_args.index("--appendonly") + 1] == "yes"
    assert postgres["image"].startswith("postgres:16")
    assert environment(postgres)["POSTGRES_DB"] == "jilu"
    assert "healthcheck" in redis and "healthcheck" in postgres


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_port_matches_its_env_file_and_the_code(services, name):
    port = DEFAULT_PORTS[name]
    assert service_env_file_port(name) == port, f"{name}_service/.env disagrees with DEFAULT_PORTS"
    service = services[name]
    assert environment(service)[f"JILU_{name.upper()}_PORT"] == str(port)
    assert [str(p) for p in service.get("expose", [])] == [str(port)]
    healthcheck = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/health" in healthcheck
    # Published ports, if any, point at that port inside the container.
    for published in service.get("ports", []):
        assert str(published).rsplit(":", 1)[-1] == str(port)


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_runs_its_main_from_the_one_image(services, name):
    service = services[name]
    build = service["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (PROJECT_ROOT / context).resolve() == PROJECT_ROOT
    assert (PROJECT_ROOT / context / dockerfile).resolve() == DOCKERFILE
    images = {services[other].get("image") for other in (*SERVICE_NAMES, "migrate")}
    assert len(images) == 1 and None not in images, f"one image for every Jilu container, got {images}"
    command = command_of(service)
    assert command == ["python", f"{name}_service/main.py"]
    assert (PROJECT_ROOT / command[1]).is_file()


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_settings_reach_the_others_and_the_shared_stores(services, name):
    env = environment(services[name])
    assert env["JILU_HOST"] == "0.0.0.0"
    assert env["JILU_ENV"] == "production"
    assert env["JILU_EMBEDDED_REDIS"] == "never"
    assert env["JILU_REDIS_URL"] == "redis://redis:6379/0"
    assert re.fullmatch(r"postgresql\+asyncpg://[^@]+@postgres(:5432)?/jilu", env["JILU_DATABASE_URL"])
    assert env["JILU_SECRET_KEY"].startswith("${JILU_SECRET_KEY:?")
    # web and mobile forward to user and llm; the default URL would mean "this container".
    assert env["JILU_USER_URL"] == f"http://user:{DEFAULT_PORTS['user']}"
    assert env["JILU_LLM_URL"] == f"http://llm:{DEFAULT_PORTS['llm']}"
    depends = services[name]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert "redis" in depends


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_environment_is_accepted_by_the_settings(services, name, monkeypatch):
    """What the container sees (the image's `.env` files under the compose environment) passes
    the real validation, production's strict checks included."""
    for key in [key for key in os.environ if key.upper().startswith("JILU_")]:
        monkeypatch.delenv(key)
    for key, value in environment(services[name]).items():
        monkeypatch.setenv(key, resolve_interpolation(value))
    env_files = (ROOT_ENV_FILE, PROJECT_ROOT / f"{name}_service" / ".env")
    settings = JiluSettings(_env_file=env_files)  # type: ignore[call-arg]
    assert settings.is_production
    assert settings.port_of(name) == DEFAULT_PORTS[name]
    assert settings.url_of("user") == "http://user:8001"
    assert settings.url_of("llm") == "http://llm:8003"


def test_nginx_is_a_trusted_proxy_and_nobody_else_is_reachable(compose, services):
    """The services believe the X-Forwarded-For of every peer on the compose network (only
    nginx publishes a port), so that network must be the one the setting names."""
    subnets = [ipaddress.ip_network(item["subnet"]) for item in compose["networks"]["default"]["ipam"]["config"]]
    assert subnets
    for name in SERVICE_NAMES:
        trusted = [
            ipaddress.ip_network(item.strip())
            for item in environment(services[name])["JILU_TRUSTED_PROXIES"].split(",")
        ]
        for subnet in subnets:
            covered = any(
                subnet.version == network.version and subnet.subnet_of(network)  # type: ignore[arg-type]
                for network in trusted
            )
            assert covered, f"{name} does not trust {subnet}"
        assert not services[name].get("ports"), f"{name} must be reached through nginx only"


def test_migrate_runs_alembic_once_before_the_services(services):
    migrate = services["migrate"]
    assert command_of(migrate) == ["alembic", "upgrade", "head"]
    assert str(migrate.get("restart", "no")) == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert environment(migrate)["JILU_DATABASE_URL"] == environment(services["user"])["JILU_DATABASE_URL"]
    assert (PROJECT_ROOT / "alembic.ini").is_file()


def test_mobile_and_llm_scale_out(services):
    for name in ("mobile", "llm"):
        service = services[name]
        assert int(service["deploy"]["replicas"]) >= 2, f"{name} shows no scale-out"
        # A fixed host port can be bound by one replica only.
        assert not service.get("ports"), f"{name} has replicas and must not publish a host port"


def test_every_jilu_variable_in_compose_is_a_real_setting():
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert JILU_NAME.search(text)
    assert unknown_setting_names(text) == set()


def test_the_setting_name_check_catches_a_misspelling():
    assert unknown_setting_names("JILU_REDIS_URL: x\nJILU_REDIS_ULR: y\nJILU_WEB_PYTHON: z") == {"JILU_REDIS_ULR"}


# -- nginx ----------------------------------------------------------------------------------


def test_nginx_routes_browser_to_web_and_mobile_app_to_mobile(services):
    nginx = services["nginx"]
    mounts = " ".join(str(volume) for volume in nginx["volumes"])
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf" in mounts
    conf = NGINX_CONF.read_text(encoding="utf-8")
    upstreams = dict(re.findall(r"upstream\s+(\w+)\s*\{[^}]*?server\s+([\w.-]+:\d+)", conf))
    assert set(upstreams.values()) == {f"web:{DEFAULT_PORTS['web']}", f"mobile:{DEFAULT_PORTS['mobile']}"}
    # Each listening server sends everything to one of them.
    servers = re.findall(r"listen\s+(\d+);.*?proxy_pass\s+http://(\w+);", conf, flags=re.DOTALL)
    routes = {port: upstreams[upstream].split(":")[0] for port, upstream in servers}
    assert sorted(routes.values()) == ["mobile", "web"]
    published = {str(port).split(":")[-1] for port in nginx["ports"]}
    assert set(routes) <= published, f"nginx listens on {sorted(routes)} but publishes {sorted(published)}"
    assert "proxy_buffering off" in conf  # chat streams (SSE) pass through chunk by chunk


# -- the image ------------------------------------------------------------------------------


def test_dockerfile_builds_from_python_311_slim_and_installs_requirements():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [arguments for instruction, arguments in instructions if instruction == "RUN"]
    assert any(re.search(r"pip install\b.*-r requirements\.txt", run) for run in runs)
    copies = [arguments for instruction, arguments in instructions if instruction == "COPY"]
    assert any(arguments.split()[0] == "requirements.txt" for arguments in copies)
    assert any(arguments.split()[0] == "." for arguments in copies), "the repository is copied into the image"


def test_local_state_stays_out_of_the_image():
    ignored = {
        line.strip().rstrip("/")
        for line in (PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"data", ".venv"} <= ignored, "data/ holds the secret key; .venv is this machine's"
