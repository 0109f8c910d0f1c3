"""Reading an OpenAI-style Server-Sent Events stream of chat completion chunks.

The wire format: `data: {json}` lines separated by blank lines, each chunk carrying
`choices[0].delta.content`; a chunk with `finish_reason`; with
`stream_options: {"include_usage": true}` a last chunk with `usage` and no choices; then
`data: [DONE]`. Comment lines (`: keep-alive`) and other fields are ignored.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator
from typing import Any

from common.api_clients.llm.errors import (
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderServerError,
    ProviderTooLarge,
)
from common.api_clients.llm.results import StreamDelta, TokenUsage

DONE = "[DONE]"


async def sse_data(chunks: AsyncIterator[bytes], *, max_line: int, max_bytes: int) -> AsyncIterator[str]:
    """The `data` of each event, joined over its lines; capped per line and in total so an
    endless line or an endless stream cannot eat the memory."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer = ""
    data: list[str] = []
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise ProviderTooLarge("The LLM provider's stream was too long")
        text = buffer + decoder.decode(chunk)
        # A "\r" at the end may be the first half of "\r\n": keep it for the next chunk.
        held = "\r" if text.endswith("\r") else ""
        text = text.removesuffix(held)
        *lines, buffer = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        buffer += held
        if len(buffer) > max_line:
            raise ProviderTooLarge("The LLM provider sent a stream line that was too long")
        for line in lines:
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            # Comments (":"), "event:", "id:" and "retry:" lines carry nothing for us.
    buffer = (buffer + decoder.decode(b"", final=True)).rstrip("\r")
    if buffer.startswith("data:"):
        data.append(buffer[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def _chunk_objects(data: str) -> list[Any]:
    """The JSON of one event; tolerates servers that forget the blank line between events."""
    try:
        return [json.loads(data)]
    except (ValueError, RecursionError):
        pass
    try:
        return [json.loads(line) for line in data.split("\n") if line.strip()]
    except (ValueError, RecursionError):
        raise ProviderBadResponse("The LLM provider's stream contained malformed JSON") from None


async def parse_chat_stream(
    chunks: AsyncIterator[bytes], *, max_chars: int, max_line: int = 1_000_000, max_bytes: int = 16_000_000
) -> AsyncIterator[StreamDelta]:
    """Text deltas in order, then one `done` delta with the usage and finish reason.

    A stream that ends without `[DONE]` and without a finish reason broke off: an error,
    so a half answer is never taken for a whole one.
    """
    usage: TokenUsage | None = None
    finish_reason: str | None = None
    total = 0
    async for data in sse_data(chunks, max_line=max_line, max_bytes=max_bytes):
        if data.strip() == DONE:
            yield StreamDelta(done=True, usage=usage, finish_reason=finish_reason)
            return
        for obj in _chunk_objects(data):
            if not isinstance(obj, dict):
                raise ProviderBadResponse("The LLM provider's stream contained an unexpected chunk")
            if obj.get("error"):
                raise ProviderServerError("The LLM provider reported an error in the middle of the answer")
            usage = TokenUsage.from_wire(obj.get("usage")) or usage
            choices = obj.get("choices")
            if not choices:
                continue
            if not isinstance(choices, list) or not isinstance(choices[0], dict):
                raise ProviderBadResponse("The LLM provider's stream chunk had no usable choices")
            choice = choices[0]
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(text, str) and text:
                total += len(text)
                if total > max_chars:
                    raise ProviderTooLarge("The LLM provider's answer was too long")
                yield StreamDelta(text=text)
            if isinstance(choice.get("finish_reason"), str):
                finish_reason = choice["finish_reason"]
    if finish_reason is None:
        raise ProviderConnectionError("The LLM provider's stream ended before the answer was complete")
    yield StreamDelta(done=True, usage=usage, finish_reason=finish_reason)
