"""`python -m bench._fake_llm PORT`: the tests' fake OpenAI-compatible provider
(`llm_service/tests/fake_provider.py`) in a process of its own, for `bench/load.py`.

In its own process so that answering hundreds of analysis calls and chat streams a second
does not share the load generator's interpreter (and skew the latencies it measures). Every
chat completion answers `ANALYSIS` (valid for record analysis and memory extraction); a
streamed one sends `CHAT_CHUNKS` pieces `CHAT_CHUNK_DELAY` apart. What it received is
forgotten every few seconds, so a soak of hours keeps a flat memory.
"""

from __future__ import annotations

import asyncio
import json
import sys

import uvicorn

from llm_service.tests.fake_provider import FakeProvider, Reply

ANALYSIS = json.dumps({"title": "预算会议", "summary": "讨论了下季度的预算。", "tags": ["预算", "会议"]})
CHAT_CHUNKS = 30  # tokens of a streamed answer
CHAT_CHUNK_DELAY = 0.01  # a fast model: 100 tokens/s, so a streamed answer takes ~0.3 s
FORGET_EVERY = 5.0


def reply() -> Reply:
    return Reply(text=ANALYSIS, chunks=["词"] * CHAT_CHUNKS, chunk_delay=CHAT_CHUNK_DELAY)


async def serve(port: int) -> None:
    fake = FakeProvider()
    fake.default_reply = reply()
    server = uvicorn.Server(
        uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=2048)
    )

    async def forget() -> None:
        # On the server's loop, between two requests: no handler sees the default reset.
        while True:
            await asyncio.sleep(FORGET_EVERY)
            fake.reset()
            fake.default_reply = reply()

    forgetting = asyncio.create_task(forget())
    try:
        await server.serve()
    finally:
        forgetting.cancel()


def main() -> None:
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
