"""The SSRF guard: configured base URLs, the request-time check (DNS rebinding), and
redirects that are never followed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from common.api_clients.http import create_http_client
from common.api_clients.llm import (
    CircuitBreaker,
    GuardedTransport,
    OpenAICompatibleClient,
    ProviderBadResponse,
    ProviderRefusedAddress,
    UnsafeBaseURL,
    check_base_url,
    create_llm_http_client,
)
from common.api_clients.llm.ssrf import unsafe_address
from common.errors import Unprocessable
from llm_service.tests.fake_provider import FAKE_API_KEY, FakeProvider, Reply, run_fake_provider

MESSAGES = [{"role": "user", "content": "hi"}]
PUBLIC = "93.184.216.34"


def resolving_to(*addresses: str):
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def not_resolving(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture(scope="module")
def internal_server() -> Iterator[FakeProvider]:
    """Stands for a service on the private network that a redirect points at."""
    with run_fake_provider() as provider:
        yield provider


def client_for(http, base_url: str, **options) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(
        http, base_url, FAKE_API_KEY, "m", breaker=CircuitBreaker(), backoff_base=0.01, **options
    )


# -- check_base_url -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:6379",
        "file:///etc/passwd",
        "ftp://example.com/v1",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "http://10.0.0.1/v1",
        "http://172.16.5.4/v1",
        "http://192.168.1.10:11434/v1",
        "http://[::1]:8080/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://100.100.100.200/",
        "http://100.64.0.1/",
        "http://0.0.0.0:8000/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://localhost:8003/v1",
        "http://user:pass@example.com/v1",
        "http://sk-key@api.openai.com/v1",
        "https://api.openai.com:99999/v1",
        "http:///v1",
        "",
        "  ",
        "http://exa mple.com/",
        "javascript:alert(1)",
        "https://api.openai.com/v1?api-key=x",
        "https://api.openai.com/v1#frag",
    ],
)
async def test_unsafe_base_urls_are_refused_naming_the_field(url: str) -> None:
    with pytest.raises(UnsafeBaseURL) as caught:
        await check_base_url(url, [])
    error = caught.value
    assert isinstance(error, Unprocessable) and error.status_code == 422
    assert isinstance(error.detail, list) and error.detail[0]["field"] == "base_url"


async def test_a_host_that_resolves_to_any_private_address_is_refused() -> None:
    with pytest.raises(UnsafeBaseURL) as caught:
        await check_base_url("https://llm.example.com/v1", [], resolve=resolving_to(PUBLIC, "10.1.2.3"))
    assert "private" in caught.value.reason


async def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(UnsafeBaseURL) as caught:
        await check_base_url("https://no-such-host.example/v1", [], resolve=not_resolving)
    assert "resolve" in caught.value.reason


async def test_public_hosts_are_allowed_and_normalised() -> None:
    assert await check_base_url("https://8.8.8.8/v1/", []) == "https://8.8.8.8/v1"
    url = await check_base_url(" https://api.example.com/v1 ", [], resolve=resolving_to(PUBLIC, "2606:4700::1111"))
    assert url == "https://api.example.com/v1"


async def test_a_listed_host_and_port_is_allowed_and_only_that_port() -> None:
    allowed = ["127.0.0.1:11434", "LOCALHOST:8080", "[::1]:9000"]
    assert await check_base_url("http://127.0.0.1:11434/v1/", allowed) == "http://127.0.0.1:11434/v1"
    assert await check_base_url("http://localhost:8080/v1", allowed) == "http://localhost:8080/v1"
    assert await check_base_url("http://[::1]:9000/v1", allowed) == "http://[::1]:9000/v1"
    for url in ("http://127.0.0.1:6379", "http://localhost:8081/v1", "http://[::1]:9001/"):
        with pytest.raises(UnsafeBaseURL):
            await check_base_url(url, allowed)


async def test_a_listed_entry_does_not_allow_credentials_or_other_schemes() -> None:
    allowed = ["127.0.0.1:6379"]
    for url in ("http://a:b@127.0.0.1:6379/", "file://127.0.0.1:6379/etc/passwd"):
        with pytest.raises(UnsafeBaseURL):
            await check_base_url(url, allowed)


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", True),
        ("169.254.169.254", True),
        ("::ffff:10.0.0.1", True),  # IPv4-mapped
        ("2002:7f00:1::", True),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", True),  # NAT64 of 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", True),  # Teredo of 127.0.0.1
        ("fd00:ec2::254", True),
        ("ff02::1", True),
        ("::", True),
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_unsafe_addresses(address: str, refused: bool) -> None:
    assert (unsafe_address(address) is not None) is refused


# -- at request time ------------------------------------------------------------------


async def test_the_guarded_transport_refuses_an_unlisted_loopback_provider(shared_fake) -> None:
    for base_url in (shared_fake.base_url, shared_fake.base_url.replace("127.0.0.1", "localhost")):
        async with create_llm_http_client([]) as http:
            with pytest.raises(ProviderRefusedAddress) as caught:
                await client_for(http, base_url).chat(MESSAGES)
        assert caught.value.error_class == "refused_address"
        assert caught.value.status_code == 502
    assert shared_fake.requests == []


async def test_the_guarded_transport_reaches_a_listed_provider(shared_fake) -> None:
    async with create_llm_http_client([shared_fake.host_port]) as http:
        assert (await client_for(http, shared_fake.base_url).chat(MESSAGES)).text
    assert len(shared_fake.chat_requests) == 1


async def test_dns_rebinding_is_caught_when_connecting(shared_fake) -> None:
    """The name was public when the URL was saved; by the time of the call it points home."""
    port = shared_fake.host_port.rsplit(":", 1)[1]
    base_url = f"http://llm.example.com:{port}/v1"
    assert await check_base_url(base_url, [], resolve=resolving_to(PUBLIC)) == base_url
    transport = GuardedTransport([], resolve=resolving_to("127.0.0.1"))
    async with create_http_client(transport=transport) as http:
        with pytest.raises(ProviderRefusedAddress):
            await client_for(http, base_url).chat(MESSAGES)
        with pytest.raises(ProviderRefusedAddress):
            await anext(client_for(http, base_url).stream_chat(MESSAGES))
    assert shared_fake.requests == []


async def test_the_client_re_checks_before_each_request_on_a_plain_http_client(shared_fake) -> None:
    async with create_http_client() as http:
        with pytest.raises(ProviderRefusedAddress):
            await client_for(http, shared_fake.base_url, allowed_hosts=[]).chat(MESSAGES)
        assert shared_fake.requests == []
        assert (await client_for(http, shared_fake.base_url, allowed_hosts=[shared_fake.host_port]).chat(MESSAGES)).text
    assert len(shared_fake.chat_requests) == 1


async def test_a_refused_address_does_not_count_against_the_breaker(shared_fake) -> None:
    breaker = CircuitBreaker(failure_threshold=1)
    async with create_llm_http_client([]) as http:
        client = OpenAICompatibleClient(http, shared_fake.base_url, "k", "m", breaker=breaker)
        for _ in range(2):
            with pytest.raises(ProviderRefusedAddress):
                await client.chat(MESSAGES)
    assert breaker.state == "closed"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_provider_redirecting_to_a_private_address_is_not_followed(
    shared_fake, internal_server, status: int
) -> None:
    internal_server.reset()
    shared_fake.script(Reply.redirect(f"{internal_server.base_url}/chat/completions", status=status))
    allowed = [shared_fake.host_port, internal_server.host_port]  # even a listed target is not followed
    async with create_llm_http_client(allowed) as http:
        with pytest.raises(ProviderBadResponse) as caught:
            await client_for(http, shared_fake.base_url).chat(MESSAGES)
    assert caught.value.error_class == "bad_response"
    assert caught.value.upstream_status == status
    assert len(shared_fake.chat_requests) == 1  # and not retried
    assert internal_server.requests == []


async def test_a_redirect_to_redis_is_not_followed_in_a_stream(shared_fake) -> None:
    shared_fake.script(Reply.redirect("http://127.0.0.1:6379/"))
    async with create_llm_http_client([shared_fake.host_port, "127.0.0.1:6379"]) as http:
        with pytest.raises(ProviderBadResponse):
            await anext(client_for(http, shared_fake.base_url).stream_chat(MESSAGES))
