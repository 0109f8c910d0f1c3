"""Settings shared by every Jilu service.

Layering, weakest first: defaults in code < the root `.env` < the service's own `.env` <
environment variables. Every variable has the `JILU_` prefix (`JILU_WEB_PORT`, ...).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROOT_ENV_FILE = PROJECT_ROOT / ".env"

SERVICE_NAMES = ("web", "user", "mobile", "llm")
DEFAULT_PORTS = {"web": 8000, "user": 8001, "mobile": 8002, "llm": 8003}

# Secrets that must never protect a production instance.
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "placeholder", "dev", "test", "jilu"}
MIN_SECRET_LENGTH = 32
SECRET_KEY_FILE = "secret_key"
# A replayable refresh token is a stolen one's chance too: the window stays short.
MAX_REFRESH_GRACE_SECONDS = 300
MAX_ATTACHMENT_URL_SECONDS = 7 * 24 * 3600

Environment = Literal["development", "test", "production"]


def split_csv(value: object) -> object:
    """Accept `a,b,c` (how people write lists in `.env` files) as well as a real list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class JiluSettings(BaseSettings):
    """Every setting (the README lists them). Services subclass it with `service_settings_config`."""

    model_config = SettingsConfigDict(
        env_prefix="JILU_",
        env_file=(ROOT_ENV_FILE,),
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    env: Environment = "development"
    host: str = "127.0.0.1"
    web_port: int = DEFAULT_PORTS["web"]
    user_port: int = DEFAULT_PORTS["user"]
    mobile_port: int = DEFAULT_PORTS["mobile"]
    llm_port: int = DEFAULT_PORTS["llm"]
    # Where the other services are reached; empty means http://<host>:<port>. Set these
    # when the services run behind a proxy or in containers (see docker-compose.yml).
    web_url: str = ""
    user_url: str = ""
    mobile_url: str = ""
    llm_url: str = ""
    services: Annotated[list[str], NoDecode] = list(SERVICE_NAMES)

    data_dir: Path = Path("data")
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    embedded_redis: Literal["auto", "always", "never"] = "auto"
    secret_key: SecretStr | None = None

    llm_provider: str = "local"
    llm_base_url: str = ""
    llm_api_key: SecretStr | None = None
    llm_model: str = ""
    llm_allowed_hosts: Annotated[list[str], NoDecode] = []

    max_upload_mb: int = 25
    # A JSON request body larger than this many KiB is refused (413) before it is read whole;
    # uploads and the import zip have their own caps (max_upload_mb).
    max_json_kb: int = 1024
    # Deleted records are purged for good (content, attachments, files) after this many days.
    trash_days: int = 30
    chat_ttl: int = 86400
    cors_origins: Annotated[list[str], NoDecode] = []
    log_level: str = "INFO"
    http_timeout: float = 30.0

    # Accounts and security (issue 3).
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    # A refresh token presented again this soon after it was rotated (a retry after a lost
    # answer, two tabs at once) gets the same new pair instead of revoking its family. 0: off.
    refresh_grace_seconds: int = 30
    # Peers (IPs or CIDRs, e.g. a reverse proxy) whose X-Forwarded-For is believed.
    trusted_proxies: Annotated[list[str], NoDecode] = []
    rate_login_user: str = "10/minute"
    rate_login_address: str = "30/minute"
    rate_register_address: str = "10/hour"
    rate_user: str = "600/minute"

    # Client contract (issue 10). The public base URL of each port, as clients reach it
    # (`https://jilu.example`); empty: the request's own scheme and host (see
    # `common.public_urls`). Signed attachment URLs live this many seconds (at least).
    public_web_url: str = ""
    public_mobile_url: str = ""
    attachment_url_seconds: int = 3600
    # Serve `/openapi.json` (an SDK can be generated against a deployment). Unset: on except in
    # production. `/docs` stays off in production either way.
    openapi_public: bool | None = None

    # Observability (issue 13). Who may read `/metrics` (IPs or CIDRs; docs/observability.md):
    # unset, loopback and the private networks except in production, where nobody may until
    # it is set; empty: nobody. OpenTelemetry traces go to this OTLP/HTTP endpoint
    # (`http://collector:4318`); empty: tracing is off. The share of traces kept, 0 to 1.
    metrics_allow: Annotated[list[str] | None, NoDecode] = None
    otel_endpoint: str = ""
    otel_sample_ratio: float = 1.0

    @field_validator("services", "llm_allowed_hosts", "cors_origins", "trusted_proxies", "metrics_allow", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return split_csv(value)

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        names = [name.removesuffix("_service") for name in value]
        unknown = sorted(set(names) - set(SERVICE_NAMES))
        if unknown:
            raise ValueError(f"unknown service(s) {unknown}; choose from {list(SERVICE_NAMES)}")
        if not names:
            raise ValueError("name at least one service")
        return names

    @field_validator("web_port", "user_port", "mobile_port", "llm_port")
    @classmethod
    def _port_range(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError("a port is a number from 1 to 65535")
        return value

    @field_validator("trusted_proxies", "metrics_allow")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        for item in value or ():
            ipaddress.ip_network(item, strict=False)  # raises ValueError, named by pydantic
        return value

    @field_validator("otel_endpoint")
    @classmethod
    def _otlp_endpoint(cls, value: str) -> str:
        value = value.strip()
        if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname):
            raise ValueError("an http:// or https:// URL of an OTLP/HTTP receiver, e.g. http://127.0.0.1:4318")
        return value

    @field_validator("otel_sample_ratio")
    @classmethod
    def _ratio(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError("a share from 0 to 1")
        return value

    @field_validator("rate_login_user", "rate_login_address", "rate_register_address", "rate_user")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse

        parse(value)  # "10/minute", "100 per hour": raises ValueError when malformed
        return value

    @field_validator("public_web_url", "public_mobile_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return public_base_url(value)

    @field_validator("attachment_url_seconds")
    @classmethod
    def _url_lifetime(cls, value: int) -> int:
        if not 1 <= value <= MAX_ATTACHMENT_URL_SECONDS:
            raise ValueError(f"a lifetime from 1 to {MAX_ATTACHMENT_URL_SECONDS} seconds (7 days)")
        return value

    @field_validator(
        "max_upload_mb", "max_json_kb", "trash_days", "chat_ttl", "access_token_minutes", "refresh_token_days"
    )
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("refresh_grace_seconds")
    @classmethod
    def _short_grace(cls, value: int) -> int:
        if not 0 <= value <= MAX_REFRESH_GRACE_SECONDS:
            raise ValueError(f"must be from 0 (off) to {MAX_REFRESH_GRACE_SECONDS} seconds")
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        # Relative paths are taken from the project root, so every service (and the
        # launcher) agrees on one directory whatever its working directory is.
        return value if value.is_absolute() else PROJECT_ROOT / value

    @model_validator(mode="after")
    def _production_is_strict(self) -> JiluSettings:
        if self.env != "production":
            return self
        key = self.secret_key.get_secret_value() if self.secret_key else None
        if key is not None and (key.lower() in PLACEHOLDER_SECRETS or len(key) < MIN_SECRET_LENGTH):
            raise ValueError(
                f"JILU_SECRET_KEY is a placeholder or shorter than {MIN_SECRET_LENGTH} characters; "
                "production refuses it (unset it to generate one)"
            )
        if "*" in self.cors_origins:
            raise ValueError("JILU_CORS_ORIGINS='*' is refused in production; list the origins")
        api_key = self.llm_api_key.get_secret_value() if self.llm_api_key else None
        if api_key is not None and api_key.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("JILU_LLM_API_KEY is a placeholder; production refuses it")
        return self

    # -- derived values -------------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def serves_openapi(self) -> bool:
        """Whether `/openapi.json` is served (`JILU_OPENAPI_PUBLIC`, else not in production)."""
        return self.openapi_public if self.openapi_public is not None else not self.is_production

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'jilu.db'}"

    def port_of(self, service: str) -> int:
        return int(getattr(self, f"{service.removesuffix('_service')}_port"))

    def url_of(self, service: str) -> str:
        """Base URL at which another service answers."""
        name = service.removesuffix("_service")
        explicit = getattr(self, f"{name}_url")
        if explicit:
            return str(explicit).rstrip("/")
        return self.local_url(self.port_of(name))

    def local_url(self, port: int) -> str:
        """URL of a service listening on this machine at `port` (on `JILU_HOST`)."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @cached_property
    def secret(self) -> str:
        """The instance secret: `JILU_SECRET_KEY`, else the one generated in the data dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return ensure_secret_key(self.data_dir)


def public_base_url(value: str) -> str:
    """`''` or an origin-like base URL: http(s), a host, no path, query or fragment (a
    trailing slash is dropped), lower-cased scheme and host."""
    value = value.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("an http:// or https:// URL with a host, e.g. https://jilu.example")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError("only a scheme, host and port: no path, query or fragment")
    if parts.username is not None or parts.password is not None:
        raise ValueError("no user name or password in a public URL")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError("the port is not a number from 0 to 65535") from exc
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def service_settings_config(service_dir: Path) -> SettingsConfigDict:
    """Settings config for a service: root `.env`, then the service's `.env`."""
    config = dict(JiluSettings.model_config)
    config["env_file"] = (ROOT_ENV_FILE, service_dir / ".env")
    return SettingsConfigDict(**config)  # type: ignore[typeddict-item]


def ensure_secret_key(data_dir: Path) -> str:
    """Read the generated secret, creating it (mode 0600) on first use.

    Several services may start at the same moment. The key is written to a private temp
    file and published with `os.link`, which fails if the name exists: exactly one writer
    wins, and no reader ever sees a half-written file.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_KEY_FILE
    if path.exists():
        return _read_secret(path)
    temp = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(48))
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temp, path)
    except FileExistsError:
        pass  # another process published first; use its key
    finally:
        temp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise RuntimeError(f"{path} is empty; delete it to generate a new secret key")
    return key
