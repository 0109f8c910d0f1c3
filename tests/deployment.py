"""The deployment's files as the tests read them: docker-compose.yml, and nginx's configuration
rendered from its one template the way the nginx image renders it at start.

The image's entrypoint (docker-entrypoint.sh) sources `/docker-entrypoint.d/*.envsh` files
(here deploy/nginx/jilu-limits.envsh, which derives the body sizes from JILU_MAX_UPLOAD_MB),
then 20-envsubst-on-templates.sh runs `envsubst` on each template with the environment
variables whose names match `NGINX_ENVSUBST_FILTER`. `nginx_environment` and `render_nginx`
do the same (the limits with the same shell script), for compose's values or for services
launched on loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from common.config import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
NGINX_DIR = PROJECT_ROOT / "deploy" / "nginx"
NGINX_TEMPLATE = NGINX_DIR / "nginx.conf.template"
NGINX_LIMITS = NGINX_DIR / "jilu-limits.envsh"
# `${NAME:-default}` and friends: what Compose substitutes from the shell.
# Groups: the name, the operator, the word after it.
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
# What envsubst replaces: `$NAME` and `${NAME}`.
SHELL_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment:`, whether written as a mapping or as a `KEY=value` list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def with_compose_defaults(value: str) -> str:
    """`value` as Compose gives it when the shell sets none of its variables: `${X:-d}` is d,
    `${X}` and `${X:+w}` are empty (`${X:?message}` would refuse to start: empty here)."""
    return INTERPOLATION.sub(lambda match: match.group(3) if match.group(2) in ("-", ":-") else "", value)


def nginx_limits(max_upload_mb: str) -> dict[str, str]:
    """The variables deploy/nginx/jilu-limits.envsh exports for this JILU_MAX_UPLOAD_MB (it is
    run by `sh`, as the image's entrypoint sources it). Raises `subprocess.CalledProcessError`
    when the script refuses the value."""
    shell = shutil.which("sh") or "/bin/sh"
    result = subprocess.run(
        [shell, "-c", '. "$0" && env', str(NGINX_LIMITS)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "JILU_MAX_UPLOAD_MB": max_upload_mb},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    pairs = (line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return {name: value for name, value in pairs if name.startswith("NGINX_JILU_")}


def nginx_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the nginx container's entrypoint sees once the limits script has run: compose's
    `environment:` for nginx (with Compose's defaults), `overrides` on top, then the script's
    exports."""
    env = {key: with_compose_defaults(value) for key, value in environment(load_compose()["services"]["nginx"]).items()}
    env.update(overrides or {})
    env.update(nginx_limits(env.get("JILU_MAX_UPLOAD_MB", "")))
    return env


def render_nginx(env: Mapping[str, str]) -> str:
    """The template with each variable whose name matches `NGINX_ENVSUBST_FILTER` (from `env`)
    and is defined in `env` replaced, as `envsubst "$defined_envs"` does; nginx's own
    variables (`$host`…) are left alone."""
    name_filter = re.compile(env.get("NGINX_ENVSUBST_FILTER", ""))
    defined = {name: value for name, value in env.items() if name_filter.search(name)}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return defined.get(name, match.group(0))

    return SHELL_VARIABLE.sub(substitute, NGINX_TEMPLATE.read_text(encoding="utf-8"))


def template_variables() -> set[str]:
    """The NGINX_JILU_ variables the template uses."""
    text = NGINX_TEMPLATE.read_text(encoding="utf-8")
    return {match.group(1) or match.group(2) for match in SHELL_VARIABLE.finditer(text)} & set(
        re.findall(r"NGINX_JILU_\w+", text)
    )


def nginx_command(conf: Path, prefix: Path, *args: str) -> list[str]:
    """Debian's nginx on `conf` with everything it writes under `prefix` (pid, temp files), in
    the foreground, one process (no worker switching user), errors on stderr."""
    binary = find_nginx() or "nginx"
    pid = prefix / "nginx.pid"
    return [
        binary,
        "-p",
        f"{prefix}/",
        "-c",
        str(conf),
        "-e",
        "stderr",
        "-g",
        f"daemon off; master_process off; pid {pid};",
        *args,
    ]


def find_nginx() -> str | None:
    """The nginx binary (Debian's `nginx` package puts it in /usr/sbin, often not on PATH)."""
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
    )
