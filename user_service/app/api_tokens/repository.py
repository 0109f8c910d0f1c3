"""The API tokens domain's owner-scoped queries: a user reaches their own tokens."""

from __future__ import annotations

from fastcrud import PolicyConfig

from common.database.repository import OwnedRepository, OwnerId
from common.users.models import ApiToken


def api_token_policy(user_id: OwnerId) -> PolicyConfig:
    """The user's own tokens, which they may list and delete (never edit)."""
    return PolicyConfig(read=ApiToken.user_id == user_id, delete=True)


class ApiTokenRepository(OwnedRepository[ApiToken]):
    """The user's API tokens, newest first (ids are UUIDv7: they order by creation)."""

    model = ApiToken
    not_found = "no such API token"
    order = (ApiToken.created_at, ApiToken.id)

    def policy(self) -> PolicyConfig:
        return api_token_policy(self.owner_id)

    async def count(self) -> int:
        """How many tokens the user holds (fastcrud's count, under the policy)."""
        return await self.crud.count(self.session)

    async def newest_first(self) -> list[ApiToken]:
        statement = self.statement().order_by(ApiToken.id.desc())
        return list((await self.session.execute(statement)).scalars())
