"""Data access for digests, always through their owner's policy (as records do)."""

from __future__ import annotations

from typing import Any

from fastcrud import FastCRUD, PolicyConfig
from fastcrud.crud.policy_enforcement import conditions_in_reach
from sqlalchemy import Select, select

from common.ai.models import Digest

digest_crud: FastCRUD = FastCRUD(Digest)

HIDDEN_COLUMNS = ["owner_id"]
# A reader changes only the flags; everything else is written by the service.
READ_ONLY_COLUMNS = ["period", "period_start", "period_end", "content", "record_ids", "provider", "created_at"]


def digest_policy(owner_id: str) -> PolicyConfig:
    mine = Digest.owner_id == owner_id
    return PolicyConfig(
        read=mine,
        create=True,
        create_check=mine,
        update=mine,
        delete=mine,
        hidden_columns=frozenset(HIDDEN_COLUMNS),
        read_only_columns=frozenset(READ_ONLY_COLUMNS),
    )


def owned_digests(owner_id: str) -> Select[Any]:
    """`SELECT digests` limited to what `owner_id` reaches."""
    return select(Digest).where(*conditions_in_reach(digest_policy(owner_id), Digest, "read"))
