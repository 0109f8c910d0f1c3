"""The digests domain's owner-scoped queries: a user reaches their own digests."""

from __future__ import annotations

from datetime import datetime

from fastcrud import PolicyConfig

from common.ai.models import Digest
from common.database.repository import OwnedRepository, OwnerId


def digest_policy(owner_id: OwnerId) -> PolicyConfig:
    """The owner's digests; a reader changes only their flags, the service writes the rest."""
    return PolicyConfig(read=Digest.owner_id == owner_id, update=True)


class DigestRepository(OwnedRepository[Digest]):
    """The owner's digests, the latest period first."""

    model = Digest
    not_found = "no such digest"
    order = (Digest.period_start, Digest.id)

    def policy(self) -> PolicyConfig:
        return digest_policy(self.owner_id)

    async def for_period(self, period: str, start: datetime) -> Digest | None:
        """The owner's digest of the `period` starting at `start`, read afresh."""
        statement = self.statement().where(Digest.period == period, Digest.period_start == start)
        digest: Digest | None = (
            await self.session.execute(statement.execution_options(populate_existing=True))
        ).scalar()
        return digest
