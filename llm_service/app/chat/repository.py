"""The chat domain's owner-scoped queries: kept conversations and their messages.

A user reaches their own conversations and their own messages. Ephemeral conversations are
not here: they live in Redis, each under its owner (`ephemeral.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastcrud import PolicyConfig
from sqlalchemy import Select, and_, bindparam, delete, or_

from common.ai.models import ChatMessage, Conversation
from common.database import utcnow
from common.database.repository import OwnedRepository, OwnerId, plausible_id, reach, scoped_select
from common.errors import NotFound
from llm_service.app.chat.store import ConversationRef, NewTurn, StoredMessage


def conversation_policy(owner_id: OwnerId) -> PolicyConfig:
    return PolicyConfig(read=Conversation.owner_id == owner_id, update=True, delete=True)


def message_policy(owner_id: OwnerId) -> PolicyConfig:
    """A message is its conversation's owner's; it goes with its conversation."""
    return PolicyConfig(read=ChatMessage.owner_id == owner_id, delete=True)


def _by_id(operation: Any) -> Select[Any]:
    policy = conversation_policy(bindparam("owner_id"))
    return scoped_select(Conversation, policy, operation).where(Conversation.id == bindparam("conversation_id"))


# The caller's conversation, built once and run with `owner_id` and `conversation_id`: asked
# before and after every answer.
_OWNED = _by_id("read")
_OWNED_FOR_UPDATE = _by_id("update").with_for_update()


def _ref(row: Conversation) -> ConversationRef:
    return ConversationRef(row.id, row.owner_id, row.title, False, row.created_at, row.updated_at)


class ConversationRepository(OwnedRepository[Conversation]):
    """The owner's kept conversations, last used first, and their messages."""

    model = Conversation
    not_found = "no such conversation"
    order = (Conversation.updated_at, Conversation.id)

    def policy(self) -> PolicyConfig:
        return conversation_policy(self.owner_id)

    async def _row(self, conversation_id: str, *, for_update: bool = False) -> Conversation | None:
        if not plausible_id(conversation_id):
            return None
        statement = _OWNED_FOR_UPDATE if for_update else _OWNED
        params = {"owner_id": self.owner_id, "conversation_id": conversation_id}
        row: Conversation | None = (await self.session.execute(statement, params)).scalar()
        return row

    async def find(self, conversation_id: str) -> ConversationRef | None:
        """The owner's kept conversation with this id, if any."""
        row = await self._row(conversation_id)
        return None if row is None else _ref(row)

    async def refs(self, cursor: tuple[datetime, str] | None, limit: int) -> list[ConversationRef]:
        """Up to `limit` of the owner's kept conversations after `cursor`, newest first."""
        statement = self.statement()
        if cursor is not None:
            moment, row_id = cursor
            statement = statement.where(
                or_(Conversation.updated_at < moment, and_(Conversation.updated_at == moment, Conversation.id < row_id))
            )
        statement = statement.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit)
        return [_ref(row) for row in (await self.session.execute(statement)).scalars()]

    async def create(self, title: str) -> ConversationRef:
        row = Conversation(owner_id=self.owner_id, title=title)
        self.session.add(row)
        await self.session.flush()
        return _ref(row)

    async def rename(self, conversation_id: str, title: str) -> ConversationRef:
        row = await self._row(conversation_id, for_update=True)
        if row is None:
            raise NotFound(self.not_found)
        row.title = title
        row.updated_at = utcnow()
        await self.session.flush()
        return _ref(row)

    async def delete(self, conversation_id: str) -> None:
        """Delete the conversation with its messages (the cascade is the database's, but
        SQLite applies it only with its pragma: messages go first)."""
        await self.session.execute(
            delete(ChatMessage).where(
                *reach(ChatMessage, message_policy(self.owner_id), "delete"),
                ChatMessage.conversation_id == conversation_id,
            )
        )
        await self.session.execute(
            delete(Conversation).where(*reach(Conversation, self.scope, "delete"), Conversation.id == conversation_id)
        )

    def _messages_of(self, conversation_id: str) -> Select[Any]:
        messages = scoped_select(ChatMessage, message_policy(self.owner_id))
        return messages.where(ChatMessage.conversation_id == conversation_id)

    async def messages(
        self, conversation_id: str, cursor: tuple[datetime, str] | None, limit: int
    ) -> list[StoredMessage]:
        """Up to `limit` of the conversation's messages after `cursor`, newest first."""
        statement = self._messages_of(conversation_id)
        if cursor is not None:
            moment, row_id = cursor
            statement = statement.where(
                or_(ChatMessage.created_at < moment, and_(ChatMessage.created_at == moment, ChatMessage.id < row_id))
            )
        statement = statement.order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc()).limit(limit)
        return [StoredMessage.from_row(row) for row in (await self.session.execute(statement)).scalars()]

    async def add_turn(self, conversation_id: str, turn: NewTurn) -> bool:
        """Store a turn; False when the conversation was deleted in the meantime."""
        row = await self._row(conversation_id, for_update=True)
        if row is None:
            return False
        for message in turn.messages:
            self.session.add(
                ChatMessage(
                    id=message.id,
                    conversation_id=row.id,
                    owner_id=self.owner_id,
                    role=message.role,
                    content=message.content,
                    citations=list(message.citations),
                    prompt_tokens=message.prompt_tokens,
                    completion_tokens=message.completion_tokens,
                    created_at=message.created_at,
                )
            )
        row.updated_at = turn.answer.created_at
        if not row.title:
            row.title = turn.title
        await self.session.flush()
        return True
