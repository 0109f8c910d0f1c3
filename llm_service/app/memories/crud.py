"""Data access for memories, always through their owner's policy (as records do)."""

from __future__ import annotations

from typing import Any

from fastcrud import FastCRUD, PolicyConfig
from fastcrud.crud.policy_enforcement import conditions_in_reach
from sqlalchemy import Select, select

from common.ai.models import Memory

memory_crud: FastCRUD = FastCRUD(Memory)

HIDDEN_COLUMNS = ["owner_id", "content_key"]
READ_ONLY_COLUMNS = ["source", "source_id", "expires_at", "reinforced_at", "created_at", "updated_at"]


def memory_policy(owner_id: str) -> PolicyConfig:
    mine = Memory.owner_id == owner_id
    return PolicyConfig(
        read=mine,
        create=True,
        create_check=mine,
        update=mine,
        delete=mine,
        hidden_columns=frozenset(HIDDEN_COLUMNS),
        read_only_columns=frozenset(READ_ONLY_COLUMNS),
    )


def owned_memories(owner_id: str) -> Select[Any]:
    """`SELECT memories` limited to what `owner_id` reaches."""
    return select(Memory).where(*conditions_in_reach(memory_policy(owner_id), Memory, "read"))
