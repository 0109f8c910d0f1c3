"""Fixtures shared by llm_service's tests: the fake provider (a fresh one per test, or the
package's shared one reset for each test) and an llm_service stack (user_service for logins,
alice and bob, the digest scheduler off)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from common.api_clients.llm import create_llm_http_client
from llm_service.app.extraction.ocr import OcrPool
from llm_service.tests.fake_provider import FAKE_API_KEY, FakeProvider, run_fake_provider, serve_fake_provider
from llm_service.tests.llm_stack import LlmStack, llm_stack
from llm_service.tests.text_images import NEEDS_FONT, cjk_font_path


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    """A fake provider of the test's own, served on its event loop."""
    async with serve_fake_provider() as provider:
        yield provider


@pytest.fixture(scope="package")
def fake_server() -> Iterator[FakeProvider]:
    """One fake provider for the package, served from a thread of its own (so it needs no event
    loop and outlives single tests); tests get it through `shared_fake`."""
    with run_fake_provider() as provider:
        yield provider


@pytest.fixture
def shared_fake(fake_server: FakeProvider) -> FakeProvider:
    """The package's fake provider, reset for this test (no script, no requests seen), refusing
    any key but `FAKE_API_KEY`: for the tests of the client and the providers, which need no
    stack and would otherwise start a server each."""
    fake_server.reset(api_key=FAKE_API_KEY)
    return fake_server


@pytest.fixture
async def http(shared_fake: FakeProvider) -> AsyncIterator[httpx.AsyncClient]:
    """An LLM HTTP client (the SSRF guard on) that may reach `shared_fake`."""
    async with create_llm_http_client([shared_fake.host_port]) as client:
        yield client


@pytest.fixture
def make_stack(make_settings: Callable[..., Any], migrated_database_url: str, redis: Any) -> Callable[..., Any]:
    """`async with make_stack(**llm_settings) as stack`: alice and bob, the scheduler off."""

    def build(**llm: Any) -> Any:
        llm.setdefault("scheduler_interval_seconds", 0)
        return llm_stack(make_settings, migrated_database_url, **llm)

    return build


@pytest.fixture
async def stack(make_stack: Callable[..., Any]) -> AsyncIterator[LlmStack]:
    async with make_stack() as built:
        yield built


@pytest.fixture(scope="module")
def pool() -> Iterator[OcrPool]:
    """An OCR worker pool for the module: the engine loads once."""
    pool = OcrPool(max_workers=1)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def font() -> str:
    """A font with Chinese glyphs, for drawing screenshots; the test skips without one."""
    path = cjk_font_path()
    if path is None:
        pytest.skip(NEEDS_FONT)
    return path
