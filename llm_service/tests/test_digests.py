"""Digests: written on request (day and week, in the user's time zone), their flags, the
scheduler (yesterday's and last week's, once across replicas under a Redis lock) and the
remote provider never seeing a record that opted out.

user_service, mobile_service (records) and llm_service run in-process on one database and
Redis; the remote provider is the fake one.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from common.ai.models import Digest
from common.users.models import User
from llm_service.app.config import LlmSettings
from llm_service.app.deps import llm_state
from llm_service.app.digests.scheduler import DIGEST_LOCK
from llm_service.app.main import create_app as create_llm_app
from llm_service.tests.fake_provider import FakeProvider, Reply
from llm_service.tests.llm_stack import SECRET, LlmStack, remote_settings
from tests.support import app_client, assert_error

DIGESTS = "/api/v1/digests"
GENERATE = f"{DIGESTS}/generate"
UNKNOWN_ID = "01a2001e-0000-7000-8000-000000000000"
DIGEST_PROMPT_MARK = "记录条数"  # in the zh-CN digest prompt only (not in analysis or memories)


def remote(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return remote_settings(fake, llm_allowed_hosts=[fake.host_port], **extra)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def record(stack: LlmStack, when: str, content: str, user: str = "alice", **fields: Any) -> str:
    created = await stack.create_record(user, content=content, occurred_at=when, **fields)
    return str(created["id"])


async def generate(stack: LlmStack, user: str = "alice", expect: int = 201, **body: Any) -> dict[str, Any]:
    response = await stack.llm.post(GENERATE, headers=stack.auth(user), json=body)
    assert response.status_code == expect, response.text
    return response.json()


async def listed(stack: LlmStack, user: str = "alice", **params: Any) -> list[dict[str, Any]]:
    response = await stack.llm.get(DIGESTS, headers=stack.auth(user), params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def set_time_zone(stack: LlmStack, user: str, zone: str) -> None:
    async with llm_state(stack.llm_app).write_sessionmaker() as session, session.begin():
        await session.execute(update(User).where(User.username == user).values(time_zone=zone))


async def stored_digests(stack: LlmStack) -> list[Digest]:
    async with llm_state(stack.llm_app).sessionmaker() as session:
        return list((await session.execute(select(Digest).order_by(Digest.id))).scalars())


def digest_calls(fake: FakeProvider) -> int:
    return sum(
        any(DIGEST_PROMPT_MARK in str(m.get("content")) for m in (r.json or {}).get("messages", []))
        for r in fake.chat_requests
    )


# Instants around 2026-03-10 (a Tuesday): Asia/Shanghai is UTC+8; New York is UTC-4 (DST
# began on 8 March). Each record is in or out of the local day 2026-03-10 as marked.
AROUND_THE_DAY = {
    "r1": ("2026-03-09T15:59:00Z", False, False),
    "r2": ("2026-03-09T16:00:00Z", True, False),
    "r3": ("2026-03-10T03:59:00Z", True, False),
    "r4": ("2026-03-10T04:00:00Z", True, True),
    "r5": ("2026-03-10T15:59:00Z", True, True),
    "r6": ("2026-03-10T16:00:00Z", False, True),
    "r7": ("2026-03-11T03:59:00Z", False, True),
    "r8": ("2026-03-11T04:00:00Z", False, False),
}


# -- on request --------------------------------------------------------------------------


async def test_a_daily_digest_covers_the_users_local_day_and_only_their_live_records(stack) -> None:
    ids = {
        name: await record(stack, when, f"Note {name} about the garden.")
        for name, (when, _, _) in AROUND_THE_DAY.items()
    }
    bobs = await record(stack, "2026-03-10T05:00:00Z", "Bob's note about the garden.", user="bob")
    gone = await record(stack, "2026-03-10T06:00:00Z", "A note deleted later.")
    assert (await stack.mobile.delete(f"/api/v1/records/{gone}", headers=stack.auth("alice"))).status_code == 204

    shanghai = await generate(stack, period="day", date="2026-03-10")

    expected = [ids[n] for n, (_, in_shanghai, _) in AROUND_THE_DAY.items() if in_shanghai]
    assert shanghai["record_ids"] == expected
    assert shanghai["period"] == "day" and shanghai["provider"] == "local"
    assert at(shanghai["period_start"]) == datetime(2026, 3, 9, 16, tzinfo=UTC)
    assert at(shanghai["period_end"]) == datetime(2026, 3, 10, 16, tzinfo=UTC)
    assert "共 4 条记录" in shanghai["content"] and "2026-03-10" in shanghai["content"]
    assert shanghai["is_read"] is False and shanghai["is_pinned"] is False
    assert bobs not in shanghai["record_ids"] and gone not in shanghai["record_ids"]

    await set_time_zone(stack, "alice", "America/New_York")
    new_york = await generate(stack, period="day", date="2026-03-10")

    assert new_york["id"] != shanghai["id"]  # another period start: another digest
    assert new_york["record_ids"] == [ids[n] for n, (_, _, in_ny) in AROUND_THE_DAY.items() if in_ny]
    assert at(new_york["period_start"]) == datetime(2026, 3, 10, 4, tzinfo=UTC)
    assert at(new_york["period_end"]) == datetime(2026, 3, 11, 4, tzinfo=UTC)


async def test_a_weekly_digest_covers_monday_to_sunday_local(stack) -> None:
    before = await record(stack, "2026-03-08T15:59:00Z", "Sunday night before the week.")
    monday = await record(stack, "2026-03-08T16:00:00Z", "Monday morning at midnight.")
    sunday = await record(stack, "2026-03-15T15:59:00Z", "Sunday night at the end.")
    after = await record(stack, "2026-03-15T16:00:00Z", "Monday of the next week.")

    week = await generate(stack, period="week", date="2026-03-11")

    assert week["record_ids"] == [monday, sunday]
    assert before not in week["record_ids"] and after not in week["record_ids"]
    assert at(week["period_start"]) == datetime(2026, 3, 8, 16, tzinfo=UTC)
    assert at(week["period_end"]) == datetime(2026, 3, 15, 16, tzinfo=UTC)
    # The provider sees local times: the records fall on that Monday and that Sunday.
    assert "本周回顾" in week["content"]
    assert "2026-03-09 周一" in week["content"] and "2026-03-15 周日" in week["content"]
    assert (await generate(stack, period="week", date="2026-03-15"))["id"] == week["id"]  # Sunday: same week
    assert (await generate(stack, period="week", date="2026-03-09"))["id"] == week["id"]  # Monday: same week


async def test_without_a_date_the_digest_is_of_today_in_the_users_zone(stack) -> None:
    await set_time_zone(stack, "alice", "Pacific/Auckland")
    zone = ZoneInfo("Pacific/Auckland")
    today = datetime.now(zone).date()

    digest = await generate(stack, period="day")

    assert at(digest["period_start"]) == datetime.combine(today, time(0), tzinfo=zone)
    assert digest["record_ids"] == []
    assert "今天还没有记录" in digest["content"]


async def test_generating_again_rewrites_the_content_and_keeps_the_flags(stack) -> None:
    first_record = await record(stack, "2026-03-10T02:00:00Z", "Planted tomatoes in the garden.")
    first = await generate(stack, period="day", date="2026-03-10")
    flagged = await stack.llm.patch(
        f"{DIGESTS}/{first['id']}", headers=stack.auth("alice"), json={"is_read": True, "is_pinned": True}
    )
    assert flagged.status_code == 200 and flagged.json()["is_read"] and flagged.json()["is_pinned"]
    second_record = await record(stack, "2026-03-10T09:00:00Z", "Watered the tomatoes at dusk.")

    again = await generate(stack, period="day", date="2026-03-10")

    assert again["id"] == first["id"]
    assert again["record_ids"] == [first_record, second_record]
    assert again["content"] != first["content"] and "共 2 条记录" in again["content"]
    assert again["is_read"] is True and again["is_pinned"] is True
    assert len(await stored_digests(stack)) == 1


async def test_flags_are_set_and_cleared_one_at_a_time(stack) -> None:
    digest = await generate(stack, period="day", date="2026-03-10")
    url = f"{DIGESTS}/{digest['id']}"

    read = (await stack.llm.patch(url, headers=stack.auth("alice"), json={"is_read": True})).json()
    pinned = (await stack.llm.patch(url, headers=stack.auth("alice"), json={"is_pinned": True})).json()
    unread = (await stack.llm.patch(url, headers=stack.auth("alice"), json={"is_read": False})).json()

    assert (read["is_read"], read["is_pinned"]) == (True, False)
    assert (pinned["is_read"], pinned["is_pinned"]) == (True, True)
    assert (unread["is_read"], unread["is_pinned"]) == (False, True)
    assert (await stack.llm.get(url, headers=stack.auth("alice"))).json() == unread
    assert unread["content"] == digest["content"]


async def test_the_list_is_paginated_latest_period_first_and_filtered_by_period(stack) -> None:
    days = [await generate(stack, period="day", date=f"2026-03-0{d}") for d in (3, 1, 5, 2, 4)]
    week = await generate(stack, period="week", date="2026-03-04")

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await stack.llm.get(DIGESTS, headers=stack.auth("alice"), params=params)).json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert sorted(d["id"] for d in seen) == sorted([d["id"] for d in days] + [week["id"]])
    starts = [at(d["period_start"]) for d in seen]
    assert starts == sorted(starts, reverse=True)
    assert [d["id"] for d in await listed(stack, period="week")] == [week["id"]]
    assert len(await listed(stack, period="day")) == 5


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"period": "month"},
        {"period": "day", "date": "2026-13-01"},
        {"period": "day", "date": "yesterday"},
        {"period": "day", "date": "0001-01-01"},
        {"period": "week", "date": "9999-12-31"},
        {"period": "day", "extra": 1},
        {"period": None},
        {"period": "week", "date": 0},  # read as 1970-01-01 by Pydantic's lax date (found by tests/fuzz)
        {"period": "day", "date": "1773446400"},
    ],
)
async def test_bad_generate_requests_get_a_422_and_store_nothing(stack, body) -> None:
    problems = assert_error(
        await stack.llm.post(GENERATE, headers=stack.auth("alice"), json=body), 422, "validation_error"
    )

    assert problems
    assert await stored_digests(stack) == []


async def test_a_period_that_has_not_begun_is_a_422_naming_the_date(stack) -> None:
    tomorrow = (datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)).isoformat()

    response = await stack.llm.post(GENERATE, headers=stack.auth("alice"), json={"period": "day", "date": tomorrow})

    problems = assert_error(response, 422, "validation_error")
    assert isinstance(problems, list) and problems[0]["field"] == "date"
    assert await stored_digests(stack) == []


@pytest.mark.parametrize(
    "body",
    [
        {"is_read": None},
        {"is_pinned": "perhaps"},
        {"content": "mine"},
        {"period": "week"},
        {"is_read": 0},  # lax booleans (found by tests/fuzz)
        {"is_pinned": "true"},
    ],
)
async def test_bad_flag_changes_get_a_422_and_change_nothing(stack, body) -> None:
    digest = await generate(stack, period="day", date="2026-03-10")

    response = await stack.llm.patch(f"{DIGESTS}/{digest['id']}", headers=stack.auth("alice"), json=body)

    assert_error(response, 422, "validation_error")
    assert (await listed(stack))[0] == digest


async def test_bad_list_parameters_are_4xx(stack) -> None:
    headers = stack.auth("alice")
    assert_error(await stack.llm.get(DIGESTS, headers=headers, params={"period": "year"}), 422, "validation_error")
    assert_error(await stack.llm.get(DIGESTS, headers=headers, params={"limit": 1000}), 422, "validation_error")
    assert_error(await stack.llm.get(DIGESTS, headers=headers, params={"cursor": "!!"}), 422, "validation_error")
    assert_error(await stack.llm.get(DIGESTS), 401, "unauthorized")
    assert_error(await stack.llm.post(GENERATE, json={"period": "day"}), 401, "unauthorized")


async def test_another_users_digest_is_404_on_every_route_and_never_listed(stack) -> None:
    await record(stack, "2026-03-10T02:00:00Z", "Alice's private garden notes.")
    digest = await generate(stack, period="day", date="2026-03-10")
    url = f"{DIGESTS}/{digest['id']}"
    bob = stack.auth("bob")

    assert_error(await stack.llm.get(url, headers=bob), 404, "not_found")
    assert_error(await stack.llm.patch(url, headers=bob, json={"is_pinned": True}), 404, "not_found")
    assert_error(await stack.llm.get(f"{DIGESTS}/{UNKNOWN_ID}", headers=bob), 404, "not_found")
    assert_error(await stack.llm.patch(f"{DIGESTS}/%00", headers=bob, json={"is_read": True}), 404, "not_found")
    assert await listed(stack, "bob") == []
    bobs = await generate(stack, "bob", period="day", date="2026-03-10")

    assert bobs["id"] != digest["id"] and bobs["record_ids"] == []
    assert "garden" not in bobs["content"]
    assert await listed(stack) == [digest]


# -- the remote provider -----------------------------------------------------------------


async def test_the_remote_provider_never_sees_an_opted_out_record(make_stack, fake) -> None:
    fake.default_reply = Reply(text="```markdown\n## A calm day\n- Walked the dog\n```")
    async with make_stack(**remote(fake)) as stack:
        public = await record(stack, "2026-03-10T02:00:00Z", "Walked the dog in the park.")
        await record(stack, "2026-03-10T03:00:00Z", "my secret zebra diary", ai_opt_out=True)

        digest = await generate(stack, period="day", date="2026-03-10")

        assert digest["content"] == "## A calm day\n- Walked the dog"
        assert digest["record_ids"] == [public]
        assert digest["provider"] == "custom"
        assert digest_calls(fake) == 1
        assert "Walked the dog in the park." in fake.received_text()
        assert "zebra" not in fake.received_text()


async def test_a_failing_provider_is_a_502_and_stores_nothing(make_stack, fake) -> None:
    fake.default_reply = Reply.html()
    async with make_stack(**remote(fake)) as stack:
        await record(stack, "2026-03-10T02:00:00Z", "Walked the dog in the park.")

        response = await stack.llm.post(
            GENERATE, headers=stack.auth("alice"), json={"period": "day", "date": "2026-03-10"}
        )

        assert response.status_code == 502, response.text
        assert response.json()["error"] == "llm_provider_error"
        assert await stored_digests(stack) == []


# -- the scheduler -----------------------------------------------------------------------

MONDAY_MORNING = datetime(2026, 3, 16, 2, tzinfo=UTC)  # 10:00 on Monday 16 March in Shanghai


async def test_the_scheduler_writes_yesterdays_and_last_weeks_digests_once(stack) -> None:
    sunday = await record(stack, "2026-03-15T04:00:00Z", "Sunday lunch with friends.")
    wednesday = await record(stack, "2026-03-11T01:00:00Z", "Wednesday standup notes.")
    await record(stack, "2026-03-16T01:00:00Z", "Monday: today, not yesterday.", user="bob")
    bobs_sunday = await record(stack, "2026-03-15T05:00:00Z", "Bob's Sunday hike.", user="bob")
    bobs_own = await generate(stack, "bob", period="day", date="2026-03-15")
    read = await stack.llm.patch(f"{DIGESTS}/{bobs_own['id']}", headers=stack.auth("bob"), json={"is_read": True})
    scheduler = llm_state(stack.llm_app).scheduler

    first = await scheduler.run_once(now=MONDAY_MORNING)
    second = await scheduler.run_once(now=MONDAY_MORNING + timedelta(minutes=5))

    assert len(first.digests) == 3 and second.digests == [] and not first.locked_out
    alices = {d["period"]: d for d in await listed(stack)}
    assert alices["day"]["record_ids"] == [sunday]
    assert at(alices["day"]["period_start"]) == datetime(2026, 3, 14, 16, tzinfo=UTC)
    assert alices["week"]["record_ids"] == [wednesday, sunday]
    assert at(alices["week"]["period_start"]) == datetime(2026, 3, 8, 16, tzinfo=UTC)
    bobs = {d["period"]: d for d in await listed(stack, "bob")}
    assert bobs["day"] == read.json()  # the one bob asked for is left alone: flags, content, time
    assert bobs["week"]["record_ids"] == [bobs_sunday]
    assert len(await stored_digests(stack)) == 4


async def test_the_scheduler_skips_users_without_records_that_day_and_inactive_users(stack) -> None:
    await record(stack, "2026-03-14T04:00:00Z", "Saturday: the day before yesterday.")
    await record(stack, "2026-03-15T04:00:00Z", "Bob's Sunday.", user="bob")
    async with llm_state(stack.llm_app).write_sessionmaker() as session, session.begin():
        await session.execute(update(User).where(User.username == "bob").values(is_active=False))

    report = await llm_state(stack.llm_app).scheduler.run_once(now=MONDAY_MORNING)

    periods = sorted(d.period for d in await stored_digests(stack))
    assert periods == ["week"]  # alice: last week only (nothing yesterday); bob: deactivated
    assert len(report.digests) == 1


async def test_the_scheduler_does_nothing_while_another_process_holds_its_lock(make_stack, fake) -> None:
    fake.default_reply = Reply(text="## Sunday")
    async with make_stack(**remote(fake)) as stack:
        await record(stack, "2026-03-15T04:00:00Z", "Sunday lunch with friends.")
        redis = llm_state(stack.llm_app).redis
        await redis.set(DIGEST_LOCK, "another-process", ex=60)

        held = await llm_state(stack.llm_app).scheduler.run_once(now=MONDAY_MORNING)
        assert held.locked_out and held.digests == []
        assert digest_calls(fake) == 0 and await stored_digests(stack) == []
        assert await redis.get(DIGEST_LOCK) == "another-process"  # not ours to release

        await redis.delete(DIGEST_LOCK)
        free = await llm_state(stack.llm_app).scheduler.run_once(now=MONDAY_MORNING)

        assert not free.locked_out and len(free.digests) == 2
        assert digest_calls(fake) == 2
        assert await redis.get(DIGEST_LOCK) is None  # released after the run


async def test_two_replicas_running_at_once_write_yesterdays_digest_once(
    make_stack, make_settings, migrated_database_url, fake
) -> None:
    fake.default_reply = Reply(text="## Tuesday", delay=0.5)  # slow: the two runs overlap
    settings = remote(fake)
    async with make_stack(**settings) as stack, AsyncExitStack() as more:
        other = create_llm_app(
            make_settings(
                LlmSettings,
                database_url=migrated_database_url,
                secret_key=SECRET,
                scheduler_interval_seconds=0,
                **settings,
            )
        )
        await more.enter_async_context(app_client(other))
        await record(stack, "2026-03-10T02:00:00Z", "Tuesday at the market.")
        wednesday = datetime(2026, 3, 11, 2, tzinfo=UTC)

        reports = await asyncio.gather(
            llm_state(stack.llm_app).scheduler.run_once(now=wednesday),
            llm_state(other).scheduler.run_once(now=wednesday),
        )

        assert sum(len(r.digests) for r in reports) == 1
        assert digest_calls(fake) == 1
        assert [d.period for d in await stored_digests(stack)] == ["day"]


async def test_the_scheduler_runs_in_the_background_until_shutdown(make_stack) -> None:
    async with make_stack(scheduler_interval_seconds=3600) as stack:
        scheduler = llm_state(stack.llm_app).scheduler
        assert scheduler.running

    assert not scheduler.running
