"""Settings: layering of `.env` files and the environment, production strictness, the secret."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import common.config
from common.config import PROJECT_ROOT, ROOT_ENV_FILE, JiluSettings, ensure_secret_key, service_settings_config
from llm_service.app.config import LlmSettings
from mobile_service.app.config import MobileSettings
from tests.support import wait_until
from user_service.app.config import UserSettings
from web_service.app.config import WebSettings

STRONG_KEY = secrets.token_urlsafe(48)


@pytest.fixture(autouse=True)
def _no_jilu_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own JILU_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("JILU_"):
            monkeypatch.delenv(name)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def settings(**values: Any) -> JiluSettings:
    # Raw values, as the environment would give them: pydantic validates (and rejects) them.
    return JiluSettings(_env_file=None, **values)  # type: ignore[call-arg]


def test_root_env_then_service_env_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write(tmp_path / ".env", "JILU_WEB_PORT=7000\nJILU_USER_PORT=7001\nJILU_MOBILE_PORT=7002\n")
    service_dir = tmp_path / "demo_service"
    write(service_dir / ".env", "JILU_USER_PORT=8801\nJILU_MOBILE_PORT=8802\n")
    monkeypatch.setattr(common.config, "ROOT_ENV_FILE", root)

    class DemoSettings(JiluSettings):
        model_config = service_settings_config(service_dir)

    monkeypatch.setenv("JILU_MOBILE_PORT", "9902")
    loaded = DemoSettings()
    assert loaded.web_port == 7000  # root .env over the default
    assert loaded.user_port == 8801  # service .env over the root .env
    assert loaded.mobile_port == 9902  # environment over both
    assert loaded.llm_port == 8003  # nobody set it: the default


@pytest.mark.parametrize("settings_cls", [WebSettings, UserSettings, MobileSettings, LlmSettings])
def test_each_service_reads_the_root_env_then_its_own(settings_cls: type[JiluSettings]) -> None:
    service = settings_cls.__module__.split(".")[0]
    assert settings_cls.model_config["env_file"] == (ROOT_ENV_FILE, PROJECT_ROOT / service / ".env")
    assert settings_cls.model_config["env_prefix"] == "JILU_"


def test_lists_parse_from_comma_separated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JILU_SERVICES", "web, user_service")
    monkeypatch.setenv("JILU_CORS_ORIGINS", "https://a.example, https://b.example")
    loaded = settings()
    assert loaded.services == ["web", "user"]
    assert loaded.cors_origins == ["https://a.example", "https://b.example"]


@pytest.mark.parametrize(("value", "message"), [("web,bogus", "bogus"), ("", "at least one service")])
def test_services_must_be_known_names(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(services=value)


@pytest.mark.parametrize("key", ["changeme", "CHANGEME", "secret", "placeholder", "too-short-key-0123456789"])
def test_production_refuses_a_weak_secret_key(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JILU_ENV", "production")
    monkeypatch.setenv("JILU_SECRET_KEY", key)
    with pytest.raises(ValidationError, match="JILU_SECRET_KEY"):
        settings()
    # Outside production the same key is allowed (a developer's instance).
    monkeypatch.setenv("JILU_ENV", "development")
    assert settings().secret == key


def test_production_accepts_a_strong_secret_key(tmp_path: Path) -> None:
    loaded = settings(env="production", secret_key=STRONG_KEY, data_dir=tmp_path)
    assert loaded.is_production
    assert loaded.secret == STRONG_KEY
    assert not (tmp_path / "secret_key").exists()  # a given key is never written out


def test_production_refuses_wildcard_cors_and_placeholder_llm_key() -> None:
    with pytest.raises(ValidationError, match="CORS"):
        settings(env="production", cors_origins="*")
    with pytest.raises(ValidationError, match="LLM_API_KEY"):
        settings(env="production", llm_api_key="changeme")
    assert settings(env="production", cors_origins="https://jilu.example").cors_origins == ["https://jilu.example"]


def test_generated_secret_is_private_and_stable(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = ensure_secret_key(data_dir)
    path = data_dir / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32
    assert path.read_text(encoding="utf-8") == key
    assert ensure_secret_key(data_dir) == key


def test_two_services_on_one_data_dir_share_the_secret(make_settings, tmp_path: Path) -> None:
    user, mobile = make_settings(UserSettings), make_settings(MobileSettings)
    assert user.secret_key is None and mobile.secret_key is None
    assert user.secret == mobile.secret == (user.data_dir / "secret_key").read_text(encoding="utf-8")
    elsewhere = make_settings(UserSettings, data_dir=tmp_path / "other")
    assert elsewhere.secret != user.secret


RACER = """
import pathlib, sys, time
from common.config import ensure_secret_key
data_dir, gate, ready = map(pathlib.Path, sys.argv[1:4])
ready.touch()
while not gate.exists():
    time.sleep(0.001)
print(ensure_secret_key(data_dir))
"""


def test_processes_racing_to_create_the_secret_agree(tmp_path: Path) -> None:
    data_dir, gate = tmp_path / "data", tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(8)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(data_dir), str(gate), str(flag)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    try:
        assert wait_until(lambda: all(flag.exists() for flag in ready), timeout=60)
        gate.touch()  # all of them start creating the secret at once
        outputs = [process.communicate(timeout=60)[0].strip() for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [process.returncode for process in processes] == [0] * len(processes)
    assert len(set(outputs)) == 1
    assert outputs[0] == (data_dir / "secret_key").read_text(encoding="utf-8")
