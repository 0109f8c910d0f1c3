"""The OpenAI-compatible client against a real local fake provider: wire format, retries,
Retry-After, timeouts, the circuit breaker, caps, and never leaking the key or the body."""

from __future__ import annotations

import logging
import time
from contextlib import aclosing
from email.utils import formatdate

import httpx
import pytest

from common.api_clients.llm import (
    CircuitBreaker,
    CircuitOpen,
    OpenAICompatibleClient,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderServerError,
    ProviderTimeout,
    ProviderTooLarge,
    ProviderUnauthorized,
    StreamDelta,
    create_llm_http_client,
)
from common.errors import UpstreamError, UpstreamTimeout
from llm_service.tests.fake_provider import FAKE_API_KEY, UPSTREAM_MARKER, FakeProvider, Reply, _vector
from tests.support import async_wait_until, free_port

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]


def make_client(http: httpx.AsyncClient, shared_fake: FakeProvider, **options: object) -> OpenAICompatibleClient:
    settings: dict[str, object] = {
        "breaker": CircuitBreaker(failure_threshold=50),
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "read_timeout": 5.0,
    }
    settings.update(options)
    base_url = str(settings.pop("base_url", shared_fake.base_url))
    api_key = settings.pop("api_key", FAKE_API_KEY)
    return OpenAICompatibleClient(http, base_url, api_key, "fake-model", **settings)  # type: ignore[arg-type]


def assert_clean(exc: BaseException) -> None:
    """Jilu's message only: neither the key nor anything of the provider's body."""
    for text in (str(exc), repr(exc), str(getattr(exc, "detail", ""))):
        assert FAKE_API_KEY not in text
        assert UPSTREAM_MARKER not in text


async def collect(client: OpenAICompatibleClient, **kwargs: object) -> list[StreamDelta]:
    return [delta async for delta in client.stream_chat(MESSAGES, **kwargs)]  # type: ignore[arg-type]


# -- chat, the wire format ------------------------------------------------------------


async def test_chat_sends_the_openai_wire_format_and_reads_text_and_usage(http, shared_fake) -> None:
    shared_fake.script(Reply(text="你好！", usage=(21, 4)))
    completion = await make_client(http, shared_fake).chat(MESSAGES, temperature=0.2, max_tokens=50, json_mode=True)
    assert completion.text == "你好！"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (21, 4)
    assert completion.finish_reason == "stop"
    (request,) = shared_fake.chat_requests
    assert request.headers["authorization"] == f"Bearer {FAKE_API_KEY}"
    assert request.json == {
        "model": "fake-model",
        "messages": MESSAGES,
        "temperature": 0.2,
        "max_tokens": 50,
        "response_format": {"type": "json_object"},
    }


async def test_chat_without_json_mode_sends_no_response_format(http, shared_fake) -> None:
    await make_client(http, shared_fake).chat(MESSAGES)
    (request,) = shared_fake.chat_requests
    assert "response_format" not in request.json
    assert "temperature" not in request.json


# -- retries --------------------------------------------------------------------------


async def test_429_is_retried_after_the_retry_after_seconds(http, shared_fake) -> None:
    shared_fake.script(Reply.rate_limited(retry_after="1"), Reply(text="after the wait"))
    completion = await make_client(http, shared_fake).chat(MESSAGES)
    assert completion.text == "after the wait"
    first, second = shared_fake.chat_requests
    # Back-off alone would be ~10 ms here: the gap shows Retry-After was honoured.
    assert second.at - first.at >= 0.9


async def test_retry_after_as_an_http_date_is_honoured(http, shared_fake) -> None:
    shared_fake.script(Reply.rate_limited(retry_after=formatdate(time.time() + 2, usegmt=True)), Reply(text="ok"))
    assert (await make_client(http, shared_fake).chat(MESSAGES)).text == "ok"
    first, second = shared_fake.chat_requests
    assert second.at - first.at >= 0.5


async def test_a_retry_after_beyond_the_cap_is_handed_back_not_waited(http, shared_fake) -> None:
    shared_fake.script(Reply.rate_limited(retry_after="120"), Reply(text="never reached"))
    with pytest.raises(ProviderRateLimited) as caught:
        await make_client(http, shared_fake, retry_after_cap=30.0).chat(MESSAGES)
    assert caught.value.error_class == "rate_limited"
    assert caught.value.retry_after == 120
    assert caught.value.status_code == 502
    assert len(shared_fake.chat_requests) == 1


async def test_5xx_is_retried_with_back_off_then_succeeds(http, shared_fake) -> None:
    shared_fake.script(Reply.error(500), Reply.error(503), Reply(text="third time"))
    assert (await make_client(http, shared_fake).chat(MESSAGES)).text == "third time"
    assert len(shared_fake.chat_requests) == 3


async def test_5xx_exhausted_is_a_server_error_after_max_retries(http, shared_fake) -> None:
    shared_fake.default_reply = Reply.error(500)
    with pytest.raises(ProviderServerError) as caught:
        await make_client(http, shared_fake, max_retries=3).chat(MESSAGES)
    assert caught.value.error_class == "server_error"
    assert caught.value.upstream_status == 500
    assert isinstance(caught.value, UpstreamError) and caught.value.status_code == 502
    assert len(shared_fake.chat_requests) == 4
    assert_clean(caught.value)


async def test_501_is_not_retried(http, shared_fake) -> None:
    shared_fake.default_reply = Reply.error(501)
    with pytest.raises(ProviderServerError):
        await make_client(http, shared_fake).chat(MESSAGES)
    assert len(shared_fake.chat_requests) == 1


async def test_a_refused_key_is_unauthorized_not_retried_and_never_quoted(http, shared_fake) -> None:
    client = make_client(http, shared_fake, api_key="sk-wrong-key-SECRET")
    with pytest.raises(ProviderUnauthorized) as caught:
        await client.chat(MESSAGES)
    assert caught.value.error_class == "unauthorized"
    assert len(shared_fake.chat_requests) == 1
    assert "sk-wrong-key-SECRET" not in str(caught.value) + repr(caught.value) + repr(client)
    assert_clean(caught.value)


async def test_other_4xx_is_a_bad_request_not_retried(http, shared_fake) -> None:
    shared_fake.script(Reply.error(400))
    with pytest.raises(ProviderBadRequest) as caught:
        await make_client(http, shared_fake).chat(MESSAGES)
    assert caught.value.error_class == "bad_request"
    assert len(shared_fake.chat_requests) == 1


async def test_a_slow_answer_times_out_as_504_without_retrying(http, shared_fake) -> None:
    shared_fake.script(Reply(delay=3.0, text="too late"))
    with pytest.raises(ProviderTimeout) as caught:
        await make_client(http, shared_fake, read_timeout=0.3).chat(MESSAGES)
    assert caught.value.error_class == "timeout"
    assert caught.value.status_code == 504
    assert isinstance(caught.value, UpstreamTimeout)
    assert len(shared_fake.chat_requests) == 1


async def test_a_provider_that_is_not_listening_is_retried_then_a_connection_error(caplog) -> None:
    port = free_port()
    caplog.set_level(logging.WARNING, logger="common.api_clients.llm.client")
    async with create_llm_http_client([f"127.0.0.1:{port}"]) as http:
        client = OpenAICompatibleClient(
            http, f"http://127.0.0.1:{port}/v1", FAKE_API_KEY, "m", breaker=CircuitBreaker(), backoff_base=0.01
        )
        with pytest.raises(ProviderConnectionError) as caught:
            await client.chat(MESSAGES)
    assert caught.value.error_class == "connection"
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 3
    assert_clean(caught.value)


# -- the circuit breaker --------------------------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_breaker_opens_short_circuits_then_half_opens(http, shared_fake) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30.0, clock=clock)
    client = make_client(http, shared_fake, breaker=breaker, max_retries=0)
    shared_fake.script(Reply.error(500), Reply.error(502))
    for _ in range(2):
        with pytest.raises(ProviderServerError):
            await client.chat(MESSAGES)
    assert breaker.state == "open"

    with pytest.raises(CircuitOpen) as caught:
        await client.chat(MESSAGES)
    assert caught.value.error_class == "circuit_open"
    assert 0 < (caught.value.retry_after or 0) <= 30
    with pytest.raises(CircuitOpen):
        await collect(client)
    assert len(shared_fake.chat_requests) == 2  # short-circuited: the provider was not contacted

    clock.now += 31
    assert breaker.state == "half_open"
    shared_fake.script(Reply(text="back"))
    assert (await client.chat(MESSAGES)).text == "back"
    assert breaker.state == "closed"
    assert len(shared_fake.chat_requests) == 3


async def test_a_failed_half_open_trial_opens_the_breaker_again(http, shared_fake) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10.0, clock=clock)
    client = make_client(http, shared_fake, breaker=breaker, max_retries=0)
    shared_fake.script(Reply.error(503), Reply.error(503))
    with pytest.raises(ProviderServerError):
        await client.chat(MESSAGES)
    clock.now += 11
    with pytest.raises(ProviderServerError):
        await client.chat(MESSAGES)  # the trial
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        await client.chat(MESSAGES)
    assert len(shared_fake.chat_requests) == 2


def test_half_open_lets_exactly_one_trial_through() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 6
    assert breaker.acquire() is True  # the trial
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    breaker.release(trial=True)  # cancelled: the next caller may try
    assert breaker.acquire() is True
    breaker.record_success(trial=True)
    assert breaker.state == "closed" and breaker.acquire() is False


async def test_an_unauthorized_answer_does_not_open_the_breaker(http, shared_fake) -> None:
    breaker = CircuitBreaker(failure_threshold=1)
    client = make_client(http, shared_fake, breaker=breaker, api_key="sk-wrong")
    for _ in range(3):
        with pytest.raises(ProviderUnauthorized):
            await client.chat(MESSAGES)
    assert breaker.state == "closed"


# -- answers that are not answers -----------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply.html(), ProviderBadResponse),
        (Reply.malformed(), ProviderBadResponse),
        (Reply.raw_json({"object": "chat.completion", "note": UPSTREAM_MARKER}), ProviderBadResponse),
        (Reply.raw_json({"choices": []}), ProviderBadResponse),
        (Reply.raw_json({"error": {"message": UPSTREAM_MARKER}}), ProviderBadResponse),
        (
            Reply.raw_json({"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]}),
            ProviderBadResponse,
        ),
        (Reply.too_large(5_000_000, declare_length=True), ProviderTooLarge),
        (Reply.too_large(5_000_000, declare_length=False), ProviderTooLarge),
        (Reply.redirect("http://127.0.0.1:6379/"), ProviderBadResponse),
    ],
    ids=[
        "html",
        "malformed",
        "no-choices",
        "empty-choices",
        "error-object",
        "filtered",
        "too-large",
        "too-large-chunked",
        "redirect",
    ],
)
async def test_unusable_answers_are_clear_errors_without_the_body(
    http, shared_fake, reply: Reply, error: type[ProviderError]
) -> None:
    shared_fake.script(reply)
    with pytest.raises(error) as caught:
        await make_client(http, shared_fake).chat(MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.error_class in ("bad_response", "too_large")
    assert len(shared_fake.chat_requests) == 1  # not retried
    assert_clean(caught.value)


async def test_content_parts_are_joined(http, shared_fake) -> None:
    parts = [{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}]
    shared_fake.script(Reply.raw_json({"choices": [{"message": {"role": "assistant", "content": parts}}]}))
    completion = await make_client(http, shared_fake).chat(MESSAGES)
    assert completion.text == "Hello world"
    assert completion.usage.total == 0


# -- streaming ------------------------------------------------------------------------


async def test_stream_yields_the_deltas_in_order_then_usage(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["今天", "天气", "很好", "。"], usage=(30, 4)))
    deltas = await collect(make_client(http, shared_fake), temperature=0.5)
    assert [d.text for d in deltas[:-1]] == ["今天", "天气", "很好", "。"]
    last = deltas[-1]
    assert last.done and last.text == "" and last.finish_reason == "stop"
    assert last.usage is not None and (last.usage.prompt_tokens, last.usage.completion_tokens) == (30, 4)
    (request,) = shared_fake.chat_requests
    assert request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}
    assert request.headers["accept"] == "text/event-stream"


async def test_streamed_answers_share_one_connection(http, shared_fake) -> None:
    """After `[DONE]` the end of the body is read, so the connection goes back to the pool:
    the next answer makes no new TCP (and, with a real provider, TLS) handshake."""
    client = make_client(http, shared_fake)
    for _ in range(3):
        shared_fake.script(Reply(chunks=["好", "的"]))
        assert "".join(d.text for d in await collect(client)) == "好的"
    connections = {request.client for request in shared_fake.chat_requests}
    assert len(shared_fake.chat_requests) == 3 and len(connections) == 1 and None not in connections


@pytest.mark.parametrize(
    "after_done",
    [
        pytest.param({"after_done_delay": 5.0}, id="slow to end its body"),
        pytest.param({"after_done": b": " + b"x" * 200_000 + b"\n\n"}, id="more after [DONE]"),
    ],
)
async def test_what_follows_done_is_read_only_so_far(http, shared_fake, after_done) -> None:
    """The answer is whole and ends on time however the provider ends its body; such a
    connection is closed rather than kept."""
    shared_fake.script(Reply(chunks=["a"], **after_done), Reply(chunks=["b"]))
    client = make_client(http, shared_fake)
    started = time.monotonic()
    deltas = await collect(client)
    assert [d.text for d in deltas] == ["a", ""] and deltas[-1].done
    assert time.monotonic() - started < 3.0
    assert "".join(d.text for d in await collect(client)) == "b"
    first, second = shared_fake.chat_requests
    assert first.client != second.client


async def test_stream_without_usage_ends_with_a_done_delta(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["a", "b"]))
    deltas = await collect(make_client(http, shared_fake), include_usage=False)
    assert [d.text for d in deltas] == ["a", "b", ""]
    assert deltas[-1].done and deltas[-1].usage is None
    assert "stream_options" not in shared_fake.chat_requests[0].json


async def test_a_stream_is_retried_before_its_first_byte(http, shared_fake) -> None:
    shared_fake.script(Reply.error(503), Reply.rate_limited(retry_after="0"), Reply(chunks=["ok"]))
    deltas = await collect(make_client(http, shared_fake))
    assert "".join(d.text for d in deltas) == "ok"
    assert len(shared_fake.chat_requests) == 3


async def test_an_error_in_the_middle_of_a_stream_is_raised_after_the_deltas_so_far(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["one ", "two ", "three"], error_after=2))
    received: list[str] = []
    with pytest.raises(ProviderServerError) as caught:
        async for delta in make_client(http, shared_fake).stream_chat(MESSAGES):
            received.append(delta.text)
    assert received == ["one ", "two "]
    assert len(shared_fake.chat_requests) == 1
    assert_clean(caught.value)


async def test_a_stream_that_breaks_off_is_never_retried(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["one ", "two ", "three"], drop_after=1))
    received: list[str] = []
    with pytest.raises(ProviderConnectionError):
        async for delta in make_client(http, shared_fake).stream_chat(MESSAGES):
            received.append(delta.text)
    assert received == ["one "]
    assert len(shared_fake.chat_requests) == 1


async def test_a_stream_that_ends_without_finishing_is_an_error(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["half"], finish_reason=None, send_done=False))
    with pytest.raises(ProviderConnectionError):
        await collect(make_client(http, shared_fake))


async def test_a_stream_without_done_but_with_a_finish_reason_is_complete(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["whole"], send_done=False))
    deltas = await collect(make_client(http, shared_fake))
    assert [d.text for d in deltas] == ["whole", ""]
    assert deltas[-1].finish_reason == "stop"


async def test_a_slow_first_token_times_out_as_504(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["late"], first_token_delay=3.0))
    with pytest.raises(ProviderTimeout) as caught:
        await collect(make_client(http, shared_fake, read_timeout=0.3))
    assert caught.value.status_code == 504
    assert len(shared_fake.chat_requests) == 1


async def test_a_stream_far_too_long_is_too_large(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["x" * 1000] * 50))
    with pytest.raises(ProviderTooLarge):
        await collect(make_client(http, shared_fake, max_stream_chars=10_000))


async def test_a_stream_answered_with_html_is_a_bad_response(http, shared_fake) -> None:
    shared_fake.script(Reply.html())
    with pytest.raises(ProviderBadResponse) as caught:
        await collect(make_client(http, shared_fake))
    assert_clean(caught.value)


async def test_a_provider_that_ignores_stream_true_still_yields_the_answer(http, shared_fake) -> None:
    completion = {
        "choices": [{"message": {"content": "all at once"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3},
    }
    shared_fake.script(Reply.raw_json(completion))
    deltas = await collect(make_client(http, shared_fake))
    assert [d.text for d in deltas] == ["all at once", ""]
    assert deltas[-1].usage is not None and deltas[-1].usage.prompt_tokens == 3


async def test_closing_a_stream_early_closes_the_upstream_request(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=[f"w{i} " for i in range(200)], chunk_delay=0.05))
    async with aclosing(make_client(http, shared_fake).stream_chat(MESSAGES)) as stream:
        async for delta in stream:
            if delta.text == "w1 ":
                break
    assert await async_wait_until(lambda: shared_fake.streams_cancelled == 1, timeout=10)
    assert shared_fake.streams_completed == 0


# -- embeddings -----------------------------------------------------------------------


async def test_embeddings_come_back_in_input_order(http, shared_fake) -> None:
    texts = ["第一", "second", "third"]
    vectors = await make_client(http, shared_fake, embedding_model="embed-small").embed(texts)
    assert vectors == [_vector(text) for text in texts]
    (request,) = shared_fake.embedding_requests
    assert request.json == {"model": "embed-small", "input": texts}


@pytest.mark.parametrize("status", [404, 405, 501])
async def test_no_embeddings_endpoint_is_none_not_an_error(http, shared_fake, status: int) -> None:
    shared_fake.script_embeddings(Reply.error(status))
    breaker = CircuitBreaker(failure_threshold=1)
    assert await make_client(http, shared_fake, breaker=breaker).embed(["a"]) is None
    assert len(shared_fake.embedding_requests) == 1
    assert breaker.state == "closed"


async def test_embeddings_that_do_not_match_the_input_are_a_bad_response(http, shared_fake) -> None:
    shared_fake.script_embeddings(Reply.raw_json({"data": [{"index": 0, "embedding": [0.1]}]}))
    with pytest.raises(ProviderBadResponse):
        await make_client(http, shared_fake).embed(["a", "b"])


async def test_embedding_nothing_makes_no_request(http, shared_fake) -> None:
    assert await make_client(http, shared_fake).embed([]) == []
    assert shared_fake.requests == []


# -- the key stays secret -------------------------------------------------------------


async def test_the_key_and_the_upstream_body_never_reach_a_log_or_an_error(http, shared_fake, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ProviderError] = []
    client = make_client(http, shared_fake, max_retries=1)
    shared_fake.script(
        Reply.error(500), Reply.error(500), Reply.malformed(), Reply.html(), Reply(chunks=["a"], error_after=0)
    )
    for call in (client.chat, client.chat, client.chat):
        with pytest.raises(ProviderError) as caught:
            await call(MESSAGES)
        errors.append(caught.value)
    with pytest.raises(ProviderError) as caught:
        await collect(client)
    errors.append(caught.value)
    with pytest.raises(ProviderUnauthorized) as caught:
        await make_client(http, shared_fake, api_key=FAKE_API_KEY + "-wrong").chat(MESSAGES)
    errors.append(caught.value)

    assert [e.error_class for e in errors] == [
        "server_error",
        "bad_response",
        "bad_response",
        "server_error",
        "unauthorized",
    ]
    for error in errors:
        assert_clean(error)
    assert caplog.records, "the retry should have been logged"
    assert FAKE_API_KEY not in caplog.text
    assert UPSTREAM_MARKER not in caplog.text
