"""docker-compose.yml, the Dockerfile and nginx's configuration (deploy/nginx/) agree with the
code's settings.

Docker is not needed: the files are read and checked against `common.config`, each
service's settings and `.env`, and the repository's layout. When Debian's nginx is installed,
the configuration compose's nginx would run is checked with `nginx -t`
(tests/e2e/test_through_nginx.py sends requests through it to launched services).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from common.config import DEFAULT_PORTS, PROJECT_ROOT, ROOT_ENV_FILE, SERVICE_NAMES, JiluSettings
from common.records.transfer.archive import ImportLimits
from common.uploads import ENVELOPE_BYTES
from llm_service.app.config import LlmSettings
from mobile_service.app.config import MobileSettings
from tests.deployment import (
    COMPOSE_FILE,
    INTERPOLATION,
    NGINX_LIMITS,
    NGINX_TEMPLATE,
    environment,
    find_nginx,
    load_compose,
    nginx_command,
    nginx_environment,
    nginx_limits,
    render_nginx,
    template_variables,
    with_compose_defaults,
)
from tests.harness import free_ports
from user_service.app.config import UserSettings
from web_service.app.config import WebSettings

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
JILU_NAME = re.compile(r"\bJILU_[A-Z0-9_]+\b")
MIB = 1024 * 1024
# Each service's settings class: the variables it reads.
SETTINGS: dict[str, type[JiluSettings]] = {
    "web": WebSettings,
    "user": UserSettings,
    "mobile": MobileSettings,
    "llm": LlmSettings,
}
# The llm_service processes that only work the queues: callers never address them.
LLM_WORKER = "llm-worker"
STATELESS = (*SERVICE_NAMES, LLM_WORKER)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def service_env_file_port(name: str) -> int:
    values = dotenv_values(PROJECT_ROOT / f"{name}_service" / ".env")
    return int(values[f"JILU_{name.upper()}_PORT"] or 0)


def known_setting_names() -> set[str]:
    """Every variable Jilu reads: every service's settings' fields, plus the per-service forms."""
    names = {f"JILU_{field.upper()}" for settings in SETTINGS.values() for field in settings.model_fields}
    for service in SERVICE_NAMES:
        names |= {f"JILU_{service.upper()}_{suffix}" for suffix in ("PYTHON", "URL", "PORT")}
    return names


# Variables of docker-compose.yml itself, not settings: the image to run.
COMPOSE_VARIABLES = {"JILU_IMAGE"}


def unknown_setting_names(text: str) -> set[str]:
    return set(JILU_NAME.findall(text)) - known_setting_names() - COMPOSE_VARIABLES


def resolve_interpolation(value: str) -> str:
    """The value with each `${...}` replaced by its default (`${X:-default}`), or else by a
    stand-in a production setting accepts."""

    def stand_in(match: re.Match[str]) -> str:
        if match.group(2) in ("-", ":-"):
            return match.group(3)
        return "s" * 48 if "SECRET" in match.group(1) else "stand-in"

    return INTERPOLATION.sub(stand_in, value)


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
    expected = {"redis", "postgres", "migrate", "nginx", LLM_WORKER, *SERVICE_NAMES}
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
    settings = SETTINGS[name](_env_file=env_files)  # type: ignore[call-arg]
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


@pytest.mark.parametrize("name", STATELESS)
def test_every_jilu_service_runs_replicas(services, name):
    """The services keep no state of their own (sessions, events and queues are in PostgreSQL
    and Redis, files on the shared volume), so each runs as several replicas."""
    service = services[name]
    assert int(service["deploy"]["replicas"]) >= 2, f"{name} shows no scale-out"
    # A fixed host port can be bound by one replica only.
    assert not service.get("ports"), f"{name} has replicas and must not publish a host port"
    assert "container_name" not in service, "a fixed container name allows one replica only"
    mounts = [str(volume) for volume in service.get("volumes", [])]
    assert any(mount.split(":")[1] == "/app/data" and not mount.startswith(".") for mount in mounts), (
        f"{name}: the uploads are on one named volume every replica shares, got {mounts}"
    )


def test_llm_workers_are_llm_service_that_no_caller_reaches(services):
    """`llm-worker` is llm_service from the same image and settings, under a name no other
    service calls (they call `llm`), with more queue workers than the chat replicas."""
    worker, llm = services[LLM_WORKER], services["llm"]
    assert command_of(worker) == ["python", "llm_service/main.py"]
    assert worker["image"] == llm["image"] and worker["build"] == llm["build"]
    worker_env, llm_env = environment(worker), environment(llm)
    tuning = {"JILU_ANALYSIS_WORKERS", "JILU_EXTRACTION_WORKERS", "JILU_OCR_PROCESSES"}
    same = {key: value for key, value in worker_env.items() if key not in tuning}
    assert same == {key: value for key, value in llm_env.items() if key not in tuning}
    for key in ("JILU_ANALYSIS_WORKERS", "JILU_EXTRACTION_WORKERS"):
        assert int(worker_env[key]) > int(llm_env[key]), f"the workers take most of the queue work ({key})"
    # Nobody is told to call it, and it is not reachable under the name callers use.
    for name in (*SERVICE_NAMES, "nginx"):
        assert LLM_WORKER not in " ".join(environment(services[name]).values())
    for network in (worker.get("networks") or {}).values() if isinstance(worker.get("networks"), dict) else []:
        assert "llm" not in (network or {}).get("aliases", [])
    assert not worker.get("expose") and not worker.get("ports")
    assert worker["depends_on"] == llm["depends_on"]
    assert "127.0.0.1:8003/health" in " ".join(worker["healthcheck"]["test"])


def test_llm_worker_environment_is_accepted_by_llm_service(services, monkeypatch):
    for key in [key for key in os.environ if key.upper().startswith("JILU_")]:
        monkeypatch.delenv(key)
    for key, value in environment(services[LLM_WORKER]).items():
        monkeypatch.setenv(key, resolve_interpolation(value))
    env_files = (ROOT_ENV_FILE, PROJECT_ROOT / "llm_service" / ".env")
    settings = LlmSettings(_env_file=env_files)  # type: ignore[call-arg]
    assert settings.is_production
    assert settings.analysis_workers == int(environment(services[LLM_WORKER])["JILU_ANALYSIS_WORKERS"])


def test_only_nginx_publishes_ports(services):
    """No service's port, /metrics included, is reachable from outside but through nginx."""
    publishing = sorted(name for name, service in services.items() if service.get("ports"))
    assert publishing == ["nginx"]


@pytest.mark.parametrize("name", STATELESS)
def test_metrics_answer_only_inside_the_compose_network(compose, services, name):
    subnets = [ipaddress.ip_network(item["subnet"]) for item in compose["networks"]["default"]["ipam"]["config"]]
    allowed = [
        ipaddress.ip_network(item.strip()) for item in environment(services[name])["JILU_METRICS_ALLOW"].split(",")
    ]
    assert allowed and all(network in subnets for network in allowed), allowed


def test_every_jilu_variable_in_compose_is_a_real_setting():
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert JILU_NAME.search(text)
    assert unknown_setting_names(text) == set()


def test_the_setting_name_check_catches_a_misspelling():
    assert unknown_setting_names("JILU_REDIS_URL: x\nJILU_REDIS_ULR: y\nJILU_WEB_PYTHON: z") == {"JILU_REDIS_ULR"}


# -- nginx ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> str:
    """The nginx.conf compose's nginx runs: the template rendered with its environment."""
    return render_nginx(nginx_environment())


def server_blocks(conf: str) -> dict[str, str]:
    """Each `server { ... }` block's text, by the port it listens on."""
    blocks: dict[str, str] = {}
    for match in re.finditer(r"\bserver\s*\{", conf):
        depth, index = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(conf[index], 0)
            index += 1
        block = conf[match.start() : index]
        listen = re.search(r"^\s*listen\s+(\S+);", block, flags=re.MULTILINE)
        assert listen, block
        blocks[listen.group(1)] = block
    return blocks


def test_nginx_renders_its_one_template_at_start(services):
    nginx = services["nginx"]
    mounts = {str(volume).split(":")[1]: str(volume).split(":")[0] for volume in nginx["volumes"]}
    env = environment(nginx)
    # The image renders /etc/nginx/templates/*.template into NGINX_ENVSUBST_OUTPUT_DIR.
    assert mounts["/etc/nginx/templates/nginx.conf.template"] == "./deploy/nginx/nginx.conf.template"
    assert env["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"
    assert (PROJECT_ROOT / mounts["/etc/nginx/templates/nginx.conf.template"]).resolve() == NGINX_TEMPLATE
    # The limits script is sourced (an executable *.envsh) before 20-envsubst-on-templates.sh.
    script = next(target for target in mounts if target.startswith("/docker-entrypoint.d/"))
    assert (PROJECT_ROOT / mounts[script]).resolve() == NGINX_LIMITS
    name = Path(script).name
    assert name.endswith(".envsh") and name < "20-envsubst-on-templates.sh", name
    assert NGINX_LIMITS.stat().st_mode & stat.S_IXUSR, "the entrypoint ignores a script without its x bit"
    # Every variable of the template is one compose (or the script) defines and the filter lets
    # through; nginx's own variables are never touched.
    name_filter = re.compile(env["NGINX_ENVSUBST_FILTER"])
    defined = set(nginx_environment())
    for variable in template_variables():
        assert name_filter.search(variable) and variable in defined, variable
    assert not name_filter.search("host") and not name_filter.search("request_id")


def test_rendered_nginx_leaves_no_placeholder_and_keeps_nginx_variables(rendered):
    assert "NGINX_JILU_" not in rendered.split("\nworker_processes", 1)[1]
    assert "$proxy_add_x_forwarded_for" in rendered and "$jilu_upstream" in rendered


def test_nginx_routes_browser_to_web_and_mobile_app_to_mobile(services, rendered):
    blocks = server_blocks(rendered)
    upstreams = {port: re.findall(r"set \$jilu_upstream ([\w.-]+:\d+);", block) for port, block in blocks.items()}
    routes = {port: found[0] for port, found in upstreams.items() if len(found) == 1}
    assert sorted(routes.values()) == [f"mobile:{DEFAULT_PORTS['mobile']}", f"web:{DEFAULT_PORTS['web']}"]
    for block in blocks.values():
        passes = set(re.findall(r"proxy_pass\s+(\S+);", block))
        assert passes == {"http://$jilu_upstream"}, passes
    # Each listening port is published; nothing else of nginx is.
    published = {str(port).split(":")[-1] for port in services["nginx"]["ports"]}
    assert set(blocks) == published, f"nginx listens on {sorted(blocks)} but publishes {sorted(published)}"
    # The names are looked up at request time (replicas come and go) with Docker's DNS.
    assert re.search(r"^\s*resolver 127\.0\.0\.11\b.*valid=\d+s", rendered, flags=re.MULTILINE)
    assert set(services["nginx"]["depends_on"]) >= {"web", "mobile"}


def test_nginx_streams_answers_unbuffered(rendered):
    """Chat answers and live events are Server-Sent Events: every chunk goes on at once, and a
    stream outlives the heartbeats that keep it open."""
    http = rendered.split("server {", 1)[0]
    assert re.search(r"^\s*proxy_buffering off;", http, flags=re.MULTILINE)
    timeout = re.search(r"^\s*proxy_read_timeout (\d+)s;", http, flags=re.MULTILINE)
    heartbeat = WebSettings.model_fields["events_heartbeat_seconds"].default
    assert timeout and int(timeout.group(1)) > 2 * heartbeat
    assert "proxy_buffering on" not in rendered


def test_nginx_never_serves_metrics(rendered):
    for port, block in server_blocks(rendered).items():
        assert re.search(r"location = /metrics \{\s*return 404;", block), f"port {port} passes /metrics on"
        assert re.search(r"location \^~ /metrics/ \{\s*return 404;", block), f"port {port} passes /metrics/… on"


def body_size_mb(directive_value: str) -> int:
    assert directive_value.endswith("m"), directive_value
    return int(directive_value[:-1])


def test_nginx_body_limits_follow_the_upload_cap(services, rendered):
    """nginx lets through what the services accept (an attachment of JILU_MAX_UPLOAD_MB, an
    import of 10 × that, each with its multipart framing) and refuses what is clearly more."""
    cap = JiluSettings.model_fields["max_upload_mb"].default
    # One variable sets the cap for the services and for nginx, with the code's default.
    for name in (*STATELESS, "nginx"):
        assert environment(services[name])["JILU_MAX_UPLOAD_MB"] == f"${{JILU_MAX_UPLOAD_MB:-{cap}}}", name
    http = rendered.split("server {", 1)[0]
    upload = body_size_mb(re.findall(r"client_max_body_size (\S+);", http)[0])
    for port, block in server_blocks(rendered).items():
        location = re.search(r"location = /api/v1/import \{[^}]*client_max_body_size (\S+);", block)
        assert location, f"port {port}: the import zip would be held to the attachment limit"
        import_limit = body_size_mb(location.group(1))
        assert ImportLimits.for_upload_cap(cap).archive_bytes + ENVELOPE_BYTES <= import_limit * MIB
        assert import_limit * MIB < ImportLimits.for_upload_cap(cap).archive_bytes + 2 * MIB
    assert cap * MIB + ENVELOPE_BYTES <= upload * MIB < (cap + 2) * MIB


@pytest.mark.parametrize("cap", ["1", "7", "100"])
def test_nginx_limits_script_derives_the_body_sizes(cap):
    limits = nginx_limits(cap)
    assert limits == {"NGINX_JILU_UPLOAD_BODY": f"{int(cap) + 1}m", "NGINX_JILU_IMPORT_BODY": f"{10 * int(cap) + 1}m"}


def test_nginx_limits_script_defaults_to_the_code_default():
    cap = JiluSettings.model_fields["max_upload_mb"].default
    assert nginx_limits("")["NGINX_JILU_UPLOAD_BODY"] == f"{cap + 1}m"


@pytest.mark.parametrize("bad", ["0", "-3", "25m", "1.5", "x", " 5", "010"])
def test_nginx_limits_script_refuses_a_cap_that_is_not_a_whole_number(bad):
    """Sourced by the entrypoint, its exit stops the container before nginx runs on a guess."""
    with pytest.raises(subprocess.CalledProcessError) as refused:
        nginx_limits(bad)
    assert "JILU_MAX_UPLOAD_MB" in refused.value.stderr


def test_nginx_accepts_the_configuration_compose_runs(tmp_path):
    """`nginx -t` on what the nginx container renders (Debian's nginx, its files under
    tmp_path), only listening on free loopback ports instead of 80 and 8082 (`nginx -t` binds
    them, which an unprivileged user may not). The names web and mobile are looked up at
    request time, so the test needs no Docker DNS."""
    if find_nginx() is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx)")
    web, mobile = free_ports(2)
    listen = {"NGINX_JILU_WEB_LISTEN": f"127.0.0.1:{web}", "NGINX_JILU_MOBILE_LISTEN": f"127.0.0.1:{mobile}"}
    rendered = render_nginx(nginx_environment(listen))
    assert "set $jilu_upstream web:8000;" in rendered and "resolver 127.0.0.11 " in rendered
    conf = tmp_path / "nginx.conf"
    conf.write_text(rendered, encoding="utf-8")
    result = subprocess.run(nginx_command(conf, tmp_path, "-t"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_compose_defaults_resolve_like_compose():
    assert with_compose_defaults("${JILU_MAX_UPLOAD_MB:-25}") == "25"
    assert with_compose_defaults("a${X}b") == "ab"
    assert INTERPOLATION.sub("", COMPOSE_FILE.read_text(encoding="utf-8")).count("${") == 0


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
