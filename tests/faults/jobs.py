"""What the fault tests count to tell that each analysis and extraction job was done once:
the jobs queued (the record events that ask for an analysis), the analyses llm_service logged,
the provider calls that analysed a record, and whether the queues are drained. Records are
told apart by a word of their own (`new_word`) in their content."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping

import redis

from common.cache import create_redis
from common.records.events import RECORD_EVENTS_STREAM
from common.records.extraction import extraction_queue
from llm_service.app.analysis.worker import analysis_queue
from llm_service.tests.fake_provider import FakeProvider

WORD = re.compile(r"w[0-9a-f]{12}")
ANALYSED = re.compile(r"analysed record (\S+) v(\d+) with")  # llm_service's line per analysis done


def new_word() -> str:
    return f"w{uuid.uuid4().hex[:12]}"


def analysis_calls(fake: FakeProvider) -> Counter[str]:
    """Provider calls that analysed a record (not memory extraction), by the record's word."""
    found: Counter[str] = Counter()
    for request in fake.chat_requests:
        messages = request.json.get("messages", []) if isinstance(request.json, dict) else []
        texts = [str(message.get("content")) for message in messages]
        if texts and '"memories"' not in texts[0]:
            found.update({word for text in texts[1:] for word in WORD.findall(text)})
    return found


def analysis_jobs(redis_url: str) -> Counter[tuple[str, str]]:
    """The analysis jobs queued, by (record id, version): the record events that ask for one."""
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        entries = client.xrange(RECORD_EVENTS_STREAM)
    return Counter(
        (fields["record_id"], fields["version"])
        for _, fields in entries
        if fields["type"] in ("created", "updated") and fields.get("ai_opt_out") != "1"
    )


def queues_drained(redis_url: str) -> bool:
    """Whether the analysis and extraction queues hold no job, waiting or pending."""

    async def read() -> bool:
        client = create_redis(redis_url)
        try:
            statuses = [await queue(client).status() for queue in (analysis_queue, extraction_queue)]
        finally:
            await client.aclose()
        return all(status.drained for status in statuses)

    return asyncio.run(read())


def queue_report(redis_url: str) -> str:
    """The analysis and extraction queues' numbers and their pending entries (id, consumer,
    idle ms, deliveries), for a failure's message."""

    async def read() -> str:
        client = create_redis(redis_url)
        lines = []
        try:
            for make in (analysis_queue, extraction_queue):
                queue = make(client)
                try:
                    status = await queue.status()
                    pending = await client.xpending_range(queue.stream, queue.group, min="-", max="+", count=20)
                except redis.exceptions.RedisError as exc:
                    lines.append(f"{queue.group}: {exc!r}")
                    continue
                lines.append(f"{queue.group}: {status}")
                for entry in pending:  # with what the job is about (a heartbeat keeps a live one's idle low)
                    found = await client.xrange(queue.stream, entry["message_id"], entry["message_id"])
                    lines.append(f"  pending {entry} {found[0][1] if found else 'gone'}")
        finally:
            await client.aclose()
        return "\n".join(lines)

    return asyncio.run(read())


def assert_each_job_done_once(
    llm_lines: Iterable[str], redis_url: str, fake: FakeProvider, records: Mapping[str, tuple[str, int]]
) -> None:
    """For each record (id → its word, its last version): every analysis job for its last
    version was done once (an upload is an edit, and a file read asks for the record to be
    analysed again with its text), and every provider call for it gave an analysis (none made
    again for a job delivered twice, none thrown away). Call once the queues are drained."""
    analysed = Counter(m.groups() for line in llm_lines if (m := ANALYSED.search(line)))
    jobs = analysis_jobs(redis_url)
    calls = analysis_calls(fake)
    for record_id, (word, version) in records.items():
        final = (record_id, str(version))
        assert analysed[final] == jobs[final] >= 1, (final, analysed, jobs)
        done = sum(count for (analysed_id, _), count in analysed.items() if analysed_id == record_id)
        assert calls[word] == done, (record_id, word, calls, analysed)
