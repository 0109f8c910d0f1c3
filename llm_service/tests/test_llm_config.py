"""Provider settings (`GET|PUT /api/v1/llm/config`, presets, `POST /api/v1/llm/test`) and
per-user provider resolution: the user's own, else the instance's, else the environment's,
else `local`. Real database, Redis and HTTP; the provider is the fake one."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from common.ai.models import LlmConfig
from common.database import create_engine, create_sessionmaker
from llm_service.app.deps import llm_state
from llm_service.app.llm_config.crypto import KeyCipher, UnreadableKey
from llm_service.app.providers.local import LocalProvider
from llm_service.app.providers.remote import RemoteProvider
from llm_service.tests.fake_provider import UPSTREAM_MARKER, FakeProvider, Reply
from llm_service.tests.llm_stack import API_KEY, SECRET, llm_stack, remote_settings

CONFIG = "/api/v1/llm/config"
OLLAMA = "127.0.0.1:11434"
LOOPBACK = "http://127.0.0.1:11435/v1"
ANALYSIS = json.dumps({"title": "Budget meeting", "summary": "The team discussed the budget.", "tags": ["budget"]})


@pytest.fixture
def make_stack(make_settings: Callable[..., Any], migrated_database_url: str, redis: Any, fake: FakeProvider):
    """`async with make_stack(**llm_settings) as stack`; the fake's host:port is allowed."""

    def build(**llm: Any):
        llm.setdefault("llm_allowed_hosts", [fake.host_port])
        return llm_stack(make_settings, migrated_database_url, **llm)

    return build


def fake_config(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {"provider": "custom", "base_url": fake.base_url, "model": "user-model", "api_key": API_KEY, **extra}


async def stored_rows(database_url: str) -> list[LlmConfig]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return list((await session.execute(select(LlmConfig))).scalars())
    finally:
        await engine.dispose()


def field_named(response: Any, name: str) -> bool:
    detail = response.json()["detail"]
    return isinstance(detail, list) and any(problem["field"].split(".")[-1] == name for problem in detail)


async def test_with_nothing_configured_the_offline_provider_applies(make_stack) -> None:
    async with make_stack() as stack:
        response = await stack.llm.get(CONFIG, headers=stack.auth("bob"))
        anonymous = await stack.llm.get(CONFIG)
        provider = await llm_state(stack.llm_app).providers.for_user(await stack.user_id("bob"))

    assert response.status_code == 200
    assert response.json() == {
        "provider": "local",
        "base_url": "",
        "model": "",
        "api_key_set": False,
        "scope": "user",
        "source": "default",
    }
    assert anonymous.status_code == 401
    assert isinstance(provider, LocalProvider)


async def test_a_users_own_provider_is_stored_encrypted_and_the_key_never_shown_or_logged(
    make_stack, fake, migrated_database_url, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.default_reply = Reply(text="pong")
    async with make_stack() as stack:
        saved = await stack.llm.put(CONFIG, headers=stack.auth("bob"), json=fake_config(fake))
        read = await stack.llm.get(CONFIG, headers=stack.auth("bob"))
        tested = await stack.llm.post("/api/v1/llm/test", headers=stack.auth("bob"))
        others = await stack.llm.get(CONFIG, headers=stack.auth("alice"))
        responses = [saved, read, tested, others]

    expected = {
        "provider": "custom",
        "base_url": fake.base_url,
        "model": "user-model",
        "api_key_set": True,
        "scope": "user",
        "source": "user",
    }
    assert saved.status_code == 200, saved.text
    assert saved.json() == expected
    assert read.json() == expected
    assert tested.json()["ok"] is True
    # The key reached the provider, decrypted, and only there.
    assert fake.chat_requests[-1].headers["authorization"] == f"Bearer {API_KEY}"
    for response in responses:
        assert API_KEY not in response.text
        assert API_KEY[5:20] not in response.text
    assert API_KEY not in caplog.text
    # Another user sees none of it.
    assert others.json()["source"] == "default" and others.json()["provider"] == "local"
    [row] = await stored_rows(migrated_database_url)
    assert row.api_key_encrypted and API_KEY not in row.api_key_encrypted
    assert KeyCipher(SECRET).decrypt(row.api_key_encrypted) == API_KEY
    with pytest.raises(UnreadableKey):  # the key is tied to this instance's secret
        KeyCipher("another secret " * 3).decrypt(row.api_key_encrypted)


async def test_presets_fill_defaults_an_omitted_key_is_kept_and_an_empty_one_clears_it(make_stack) -> None:
    # Ollama's preset answers on loopback: allowed here as an admin would allow it.
    async with make_stack(llm_allowed_hosts=[OLLAMA]) as stack:
        headers = stack.auth("bob")
        preset = await stack.llm.put(CONFIG, headers=headers, json={"provider": "ollama", "api_key": API_KEY})
        model_only = await stack.llm.put(CONFIG, headers=headers, json={"provider": "ollama", "model": "qwen3:8b"})
        cleared = await stack.llm.put(CONFIG, headers=headers, json={"provider": "ollama", "api_key": ""})
        not_allowed = await stack.llm.put(CONFIG, headers=headers, json={"provider": "ollama", "base_url": LOOPBACK})

    assert preset.status_code == 200, preset.text
    assert preset.json()["base_url"] == "http://127.0.0.1:11434/v1"
    assert preset.json()["model"] == "qwen2.5:7b"
    assert preset.json()["api_key_set"] is True
    assert model_only.json()["model"] == "qwen3:8b" and model_only.json()["api_key_set"] is True
    assert cleared.json()["api_key_set"] is False
    assert not_allowed.status_code == 422 and field_named(not_allowed, "base_url")


async def test_a_stored_key_does_not_follow_the_base_url_to_another_host(make_stack, fake, migrated_database_url):
    async with make_stack(llm_allowed_hosts=[OLLAMA, fake.host_port]) as stack:
        headers = stack.auth("bob")
        await stack.llm.put(CONFIG, headers=headers, json={"provider": "ollama", "api_key": API_KEY})
        elsewhere = {"provider": "custom", "base_url": fake.base_url, "model": "m"}
        moved = await stack.llm.put(CONFIG, headers=headers, json=elsewhere)
        tested = await stack.llm.post("/api/v1/llm/test", headers=headers, json=elsewhere)

    assert moved.status_code == 422 and field_named(moved, "api_key")
    [row] = await stored_rows(migrated_database_url)
    assert row.provider == "ollama"  # unchanged
    # A test of unsaved settings on another host goes without the stored key.
    assert tested.json()["ok"] is True
    assert "authorization" not in fake.chat_requests[-1].headers


async def test_only_admins_set_the_instance_provider_and_it_applies_to_users_without_their_own(
    make_stack, fake, migrated_database_url
) -> None:
    async with make_stack() as stack:
        refused = await stack.llm.put(
            CONFIG, params={"scope": "instance"}, headers=stack.auth("bob"), json=fake_config(fake)
        )
        rows_after_refusal = await stored_rows(migrated_database_url)
        saved = await stack.llm.put(
            CONFIG, params={"scope": "instance"}, headers=stack.auth("alice"), json=fake_config(fake, model="inst")
        )
        bob = await stack.llm.get(CONFIG, headers=stack.auth("bob"))
        bob_instance = await stack.llm.get(CONFIG, params={"scope": "instance"}, headers=stack.auth("bob"))
        await stack.llm.put(CONFIG, headers=stack.auth("bob"), json={"provider": "local"})
        bob_own = await stack.llm.get(CONFIG, headers=stack.auth("bob"))
        refused_test = await stack.llm.post("/api/v1/llm/test", params={"scope": "instance"}, headers=stack.auth("bob"))
        bad_scope = await stack.llm.get(CONFIG, params={"scope": "everyone"}, headers=stack.auth("bob"))

    assert refused.status_code == 403
    assert rows_after_refusal == []
    assert saved.status_code == 200, saved.text
    assert saved.json()["scope"] == "instance" and saved.json()["source"] == "instance"
    assert bob.json() | {"api_key_set": None} == {
        "provider": "custom",
        "base_url": fake.base_url,
        "model": "inst",
        "api_key_set": None,
        "scope": "user",
        "source": "instance",
    }
    assert bob.json()["api_key_set"] is True and API_KEY not in bob.text
    assert bob_instance.json()["source"] == "instance"
    assert bob_own.json()["source"] == "user" and bob_own.json()["provider"] == "local"
    assert refused_test.status_code == 403
    assert bad_scope.status_code == 422


@pytest.mark.parametrize(
    "base_url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:6379",
        "file:///etc/passwd",
        "http://10.1.2.3:8080/v1",
        "http://192.168.1.20/v1",
        "http://user:pw@api.openai.com/v1",
        "gopher://api.openai.com/",
    ],
)
async def test_unsafe_base_urls_are_refused_naming_base_url_and_nothing_is_stored(
    make_stack, migrated_database_url, base_url
) -> None:
    async with make_stack() as stack:
        body = {"provider": "custom", "base_url": base_url, "model": "m", "api_key": API_KEY}
        response = await stack.llm.put(CONFIG, headers=stack.auth("bob"), json=body)
        tested = await stack.llm.post("/api/v1/llm/test", headers=stack.auth("bob"), json=body)
        after = await stack.llm.get(CONFIG, headers=stack.auth("bob"))

    assert response.status_code == 422 and field_named(response, "base_url"), response.text
    assert tested.status_code == 422 and field_named(tested, "base_url")
    assert API_KEY not in response.text
    assert await stored_rows(migrated_database_url) == []
    assert after.json()["source"] == "default"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"provider": "custom", "model": "m"}, "base_url"),
        ({"provider": "custom", "base_url": "https://api.openai.com/v1"}, "model"),
        ({"provider": "openai", "api_key": API_KEY, "organisation": "x"}, "organisation"),
        ({"provider": "skynet"}, "provider"),
        ({"base_url": "https://api.openai.com/v1"}, "provider"),
        ({"provider": "openai", "api_key": "sk with spaces"}, "api_key"),
        ({"provider": "openai", "api_key": "x" * 501}, "api_key"),
        ({"provider": "openai", "model": 42}, "model"),
    ],
)
async def test_bad_settings_get_a_422_naming_the_field(make_stack, migrated_database_url, body, field) -> None:
    async with make_stack() as stack:
        response = await stack.llm.put(CONFIG, headers=stack.auth("bob"), json=body)
        not_json = await stack.llm.put(
            CONFIG, headers={**stack.auth("bob"), "content-type": "application/json"}, content=b"{nope"
        )

    assert response.status_code == 422, response.text
    assert field_named(response, field), response.text
    assert API_KEY not in response.text
    assert not_json.status_code == 422
    assert await stored_rows(migrated_database_url) == []


async def test_presets_are_listed(make_stack) -> None:
    async with make_stack() as stack:
        response = await stack.llm.get("/api/v1/llm/presets", headers=stack.auth("bob"))

    assert response.status_code == 200
    names = [preset["name"] for preset in response.json()]
    assert names == ["openai", "deepseek", "qwen", "ollama", "custom"]
    openai = response.json()[0]
    assert openai["base_url"] == "https://api.openai.com/v1" and openai["model"]


async def test_the_test_call_reports_latency_and_saves_nothing(make_stack, fake, migrated_database_url) -> None:
    fake.default_reply = Reply(text="pong")
    async with make_stack() as stack:
        response = await stack.llm.post("/api/v1/llm/test", headers=stack.auth("bob"), json=fake_config(fake))
        offline = await stack.llm.post("/api/v1/llm/test", headers=stack.auth("bob"))

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True and result["provider"] == "custom" and result["model"] == "user-model"
    assert isinstance(result["latency_ms"], int) and result["latency_ms"] >= 0
    assert result["error_class"] is None
    [request] = fake.chat_requests
    assert request.json["messages"] == [{"role": "user", "content": "ping"}]
    assert request.json["max_tokens"] == 5
    assert await stored_rows(migrated_database_url) == []
    assert offline.json()["ok"] is True and offline.json()["provider"] == "local"


@pytest.mark.parametrize(
    ("reply", "error_class"),
    [(Reply.error(500), "server_error"), (Reply.html(), "bad_response"), (Reply.error(401), "unauthorized")],
)
async def test_a_failing_provider_gives_its_error_class_never_its_body(make_stack, fake, caplog, reply, error_class):
    caplog.set_level(logging.DEBUG)
    fake.default_reply = reply
    async with make_stack() as stack:
        saved = await stack.llm.put(CONFIG, headers=stack.auth("bob"), json=fake_config(fake))
        response = await stack.llm.post("/api/v1/llm/test", headers=stack.auth("bob"))

    assert saved.status_code == 200
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is False
    assert result["error_class"] == error_class
    assert result["latency_ms"] is None
    assert UPSTREAM_MARKER not in response.text
    assert UPSTREAM_MARKER not in caplog.text
    assert API_KEY not in caplog.text
    assert len(fake.chat_requests) == 1  # a test is not retried


async def test_the_registry_resolves_user_then_instance_then_environment_then_local(
    make_settings, migrated_database_url, redis, fake
) -> None:
    settings = remote_settings(fake, llm_allowed_hosts=[fake.host_port])
    async with llm_stack(make_settings, migrated_database_url, **settings) as stack:
        registry = llm_state(stack.llm_app).providers
        bob, alice = await stack.user_id("bob"), await stack.user_id("alice")
        environment = await registry.for_user(bob)
        await stack.llm.put(
            CONFIG, params={"scope": "instance"}, headers=stack.auth("alice"), json=fake_config(fake, model="inst")
        )
        instance = await registry.for_user(bob)
        await stack.llm.put(CONFIG, headers=stack.auth("bob"), json=fake_config(fake, model="own"))
        own = await registry.for_user(bob)
        for_alice = await registry.for_user(alice)
        again = await registry.for_user(bob)
        await stack.llm.put(CONFIG, headers=stack.auth("bob"), json={"provider": "local"})
        offline = await registry.for_user(bob)

    assert isinstance(environment, RemoteProvider) and environment.client.model == "env-model"
    assert isinstance(instance, RemoteProvider) and instance.client.model == "inst"
    assert isinstance(own, RemoteProvider) and own.client.model == "own"
    assert isinstance(for_alice, RemoteProvider) and for_alice.client.model == "inst"
    assert again is own  # built once, reused while the setting is unchanged
    assert isinstance(offline, LocalProvider)


async def test_a_put_changes_the_provider_analysis_uses(make_stack, fake) -> None:
    fake.default_reply = Reply(text=ANALYSIS)
    async with make_stack() as stack:
        before = await stack.create_record("bob", content="Notes from the budget meeting with finance.")
        offline = await stack.wait_for_ai("bob", before["id"])
        calls_before = len(fake.chat_requests)
        saved = await stack.llm.put(CONFIG, headers=stack.auth("bob"), json=fake_config(fake))
        after = await stack.create_record("bob", content="Second meeting about the marketing budget.")
        remote = await stack.wait_for_ai("bob", after["id"])
        alices = await stack.create_record("alice", content="Alice plans the garden for spring.")
        alice_offline = await stack.wait_for_ai("alice", alices["id"])

    assert offline["ai"]["status"] == "done" and calls_before == 0
    assert saved.status_code == 200
    assert remote["ai"]["title"] == "Budget meeting"
    # The analysis (and whatever else ran for Bob's record) went to Bob's provider, with his key.
    assert any("marketing budget" in json.dumps(r.json) for r in fake.chat_requests)
    for request in fake.chat_requests:
        assert request.json["model"] == "user-model"
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
    # Bob's own provider is only Bob's: Alice's record stayed offline.
    assert alice_offline["ai"]["status"] == "done" and alice_offline["ai"]["title"] != "Budget meeting"
    assert "garden" not in fake.received_text()
