"""Reading provider settings: one row per user (their own) and one with no owner (the
instance's, set by an admin). Plain SQLAlchemy rather than an `OwnedRepository`: a user
reads the instance's row too, which no owner holds, and writes are the service's.

The database cannot make "one row without an owner" unique (NULLs are distinct), so every
read takes the oldest such row: two admins saving at the same moment never make the
instance ambiguous.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.ai.models import LlmConfig


def _owned_by(owner_id: str | None) -> ColumnElement[bool]:
    return LlmConfig.owner_id.is_(None) if owner_id is None else LlmConfig.owner_id == owner_id


async def get_config(session: AsyncSession, owner_id: str | None) -> LlmConfig | None:
    """`owner_id`'s own setting, or the instance's when `owner_id` is None."""
    statement = select(LlmConfig).where(_owned_by(owner_id)).order_by(LlmConfig.created_at, LlmConfig.id).limit(1)
    return (await session.execute(statement)).scalar_one_or_none()


# Built once, run with its parameter: asked before every answer and analysis.
_CONFIGS_FOR = (
    select(LlmConfig)
    .where(or_(LlmConfig.owner_id == bindparam("user_id"), LlmConfig.owner_id.is_(None)))
    .order_by(LlmConfig.created_at, LlmConfig.id)
)


async def configs_for(session: AsyncSession, user_id: str) -> tuple[LlmConfig | None, LlmConfig | None]:
    """(the user's own setting, the instance's) in one query; either may be missing."""
    own: LlmConfig | None = None
    instance: LlmConfig | None = None
    for row in (await session.execute(_CONFIGS_FOR, {"user_id": user_id})).scalars():
        if row.owner_id is None:
            instance = instance or row
        elif row.owner_id == user_id:
            own = row
    return own, instance
