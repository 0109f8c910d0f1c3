"""Every create, edit and delete is announced on the Redis stream `jilu:records:events`
(type, record id, owner, version); refused and no-op writes announce nothing."""

from __future__ import annotations

import httpx

from tests.records.conftest import RECORDS, Account, RecordsStack


async def test_create_edit_and_delete_are_announced(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner, content="first draft")
    url = f"{RECORDS}/{record['id']}"
    response = await records_api.patch(
        url, json={"version": 1, "content": "second draft"}, headers=records_owner.headers
    )
    assert response.status_code == 200
    response = await records_api.patch(url, json={"version": 2, "ai_opt_out": True}, headers=records_owner.headers)
    assert response.status_code == 200
    assert (await records_api.delete(url, headers=records_owner.headers)).status_code == 204

    events = await records_stack.events()
    assert [(e["type"], e["version"]) for e in events] == [
        ("created", "1"),
        ("updated", "2"),
        ("updated", "3"),
        ("deleted", "4"),
    ]
    for event in events:
        assert event["record_id"] == record["id"]
        assert event["owner_id"] == records_owner.id
    assert [e["ai_opt_out"] for e in events] == ["0", "0", "1", "1"]
    assert await records_stack.redis.xlen("jilu:records:events") == 4  # the stream consumers read


async def test_refused_and_empty_writes_announce_nothing(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    record = await records_stack.create(records_api, records_owner, content="keep", tags=["a"])
    url = f"{RECORDS}/{record['id']}"
    assert len(await records_stack.events()) == 1

    attempts = [
        records_api.post(RECORDS, json={"content": "x", "kind": "essay"}, headers=records_owner.headers),  # 422
        records_api.patch(url, json={"content": "x"}, headers=records_owner.headers),  # 428
        records_api.patch(url, json={"version": 9, "content": "x"}, headers=records_owner.headers),  # 409
        records_api.patch(url, json={"version": 1, "content": "x"}, headers=records_stranger.headers),  # 404
        records_api.delete(url, headers=records_stranger.headers),  # 404
        records_api.post(RECORDS, json={"id": record["id"], "content": "x"}, headers=records_stranger.headers),  # 409
        records_api.post(
            RECORDS, json={"id": record["id"], "content": "keep"}, headers=records_owner.headers
        ),  # 200, a retry
        records_api.patch(
            url, json={"version": 1, "content": "keep", "tags": ["A"]}, headers=records_owner.headers
        ),  # no-op
    ]
    statuses = [(await attempt).status_code for attempt in attempts]
    assert statuses == [422, 428, 409, 404, 404, 409, 200, 200]
    assert len(await records_stack.events()) == 1
